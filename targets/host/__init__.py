"""The facts of the machine a cell runs on: its fingerprint (ISA, CPU, flags, memory, GPUs, library
versions), the CPUs' conditions while timing (cores, governors, clocks, temperatures) and the GPU's
telemetry (NVML). It reads the machine and imports nothing else of speedproof but its errors."""
