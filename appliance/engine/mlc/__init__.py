"""MLC LLM on the board GPU: the engine, and the compiled model libraries matched to board and toolchain."""
