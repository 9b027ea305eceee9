// The spin kernel, apart from compute.cu because its PTX timer has no CPU
// form for kernels/emulation.cpp.

// Keeps the GPU busy for `ns` nanoseconds, so that the CPU has enqueued the
// start event, the graph launch and the end event before the GPU reaches
// them: the time between the events is then the GPU's alone, without the
// CPU's submission latency. %globaltimer ticks every 32 ns to 1 us depending
// on the GPU, either fine for the engine's 50 us. `max_cycles` of clock64
// bound the loop in case the timer does not advance at all (a hang would
// cost the whole GPU check).
extern "C" __global__ void spin(long long ns, long long max_cycles) {
    long long start, now;
    long long c0 = clock64();
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < ns && clock64() - c0 < max_cycles);
}
