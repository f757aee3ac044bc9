"""llama.cpp on the CPU: a build for every CPU, the CPU backend a unit loads, and the engine itself."""
