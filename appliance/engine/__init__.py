"""LLM engines behind one interface (llama.cpp on CPU, MLC LLM on GPU), and the device probe."""
