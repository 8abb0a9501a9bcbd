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
	printf("allocated %s MiB\n", argv[1]);
	return 0;
}
