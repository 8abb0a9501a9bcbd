/* A fixed amount of CPU work: `spin N` runs N iterations, `spin 0` spins until killed.
 * The same N must cost the same CPU time run after run; how much it varies is what the
 * benchmark reports. `volatile` keeps the compiler from folding the loop away. */
#include <stdlib.h>

int main(int argc, char **argv) {
	unsigned long iterations = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;
	volatile unsigned long sum = 0;
	for (unsigned long i = 0; iterations == 0 || i < iterations; i++)
		sum += i;
	return 0;
}
