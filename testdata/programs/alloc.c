/* alloc MIB: allocate MIB MiB and touch every byte, then exit 0. Below a memory limit this must
 * run fine; above it the kernel's OOM killer of the run's cgroup must end it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: alloc MIB\n");
		return 2;
	}
	size_t bytes = (size_t)atol(argv[1]) << 20;
	char *block = malloc(bytes);
	if (block == NULL) {
		printf("malloc failed\n");
		return 1;
	}
	memset(block, 1, bytes);
	/* Read the pages back: otherwise the compiler may drop the whole allocation. */
	unsigned long sum = 0;
	for (size_t i = 0; i < bytes; i += 4096)
		sum += ((volatile char *)block)[i];
	if (sum != bytes / 4096)
		return 3;
	printf("allocated %s MiB\n", argv[1]);
	return 0;
}
