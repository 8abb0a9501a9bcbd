/* thrash SECONDS ANON_MIB: the page cache of a program's own binary thrashing under a tight
 * memory limit. The binary carries BIG_MIB of read-only data; the program first drops that
 * data from the page cache (written back first, so that its own faults bring it back, charged to its own memory
 * cgroup, as for a binary the run is the first to read), then holds ANON_MIB of anonymous
 * memory, which cannot be reclaimed (no swap), and reads its data page after page for
 * SECONDS. With a memory limit below ANON_MIB + BIG_MIB the kernel must evict pages of the
 * binary to fault in the next ones: every pass refaults them, and the run spends its time in
 * reclaim and waiting for the disk. Prints the passes made. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BIG_MIB 64
#define PAGE 4096

/* Initialised, so it is stored in the binary (.rodata), not zero-filled at run time. */
static const unsigned char big[BIG_MIB << 20] = {1};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 2;
	size_t anon_mib = argc > 2 ? strtoul(argv[2], NULL, 10) : 32;
	int self = open("/proc/self/exe", O_RDONLY);
	if (self >= 0) {
		/* Only clean pages can be dropped: a binary just linked is still dirty. */
		fdatasync(self);
		posix_fadvise(self, 0, 0, POSIX_FADV_DONTNEED);
		close(self);
	}
	char *anon = malloc(anon_mib << 20);
	if (!anon) {
		fprintf(stderr, "thrash: cannot allocate %zu MiB\n", anon_mib);
		return 2;
	}
	memset(anon, 1, anon_mib << 20);
	volatile unsigned sum = 0;
	unsigned long passes = 0;
	double end = now() + seconds;
	while (now() < end) {
		for (size_t offset = 0; offset < sizeof big; offset += PAGE)
			sum += big[offset];
		passes++;
	}
	printf("%lu passes over %d MiB with %zu MiB held\n", passes, BIG_MIB, anon_mib);
	return 0;
}
