"""Not the bridge itself: throwaway namespaces and bridge processes, the kernel's own view
through ``ip -j``, and ``ifpx demo``, for the demo, the tests and the benchmarks."""
