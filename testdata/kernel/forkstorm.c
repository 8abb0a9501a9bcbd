/* forkstorm RSS_MIB SECONDS: fork from a process with a large resident set. The program
 * touches RSS_MIB of anonymous memory (every page written, so every page table entry is
 * populated), prints "ready" and its pid, then forks for SECONDS: each child exits at once,
 * the parent waits for it and forks again. fork copies the parent's page tables (and marks
 * every page copy-on-write), so each fork takes time in proportion to the resident set: about
 * a millisecond per few hundred MiB. Prints the forks made and their mean and longest time as
 * the parent saw them. Transparent huge pages are asked off for the memory (MADV_NOHUGEPAGE):
 * a huge page is one entry to copy, and the trouble is the 4 KiB ones. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 1024;
	double seconds = argc > 2 ? atof(argv[2]) : 2;
	size_t size = mib << 20;
	char *memory = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (memory == MAP_FAILED) {
		perror("forkstorm: mmap");
		return 2;
	}
	madvise(memory, size, MADV_NOHUGEPAGE);
	memset(memory, 1, size);
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	unsigned long forks = 0;
	double total = 0, longest = 0;
	double end = now() + seconds;
	while (now() < end) {
		double started = now();
		pid_t child = fork();
		if (child < 0) {
			perror("forkstorm: fork");
			return 2;
		}
		if (child == 0)
			_exit(0);
		double took = now() - started;
		total += took;
		if (took > longest)
			longest = took;
		forks++;
		waitpid(child, NULL, 0);
	}
	printf("%lu forks from %zu MiB: mean %.3f ms, longest %.3f ms\n", forks, mib,
	       forks ? total / forks * 1000 : 0.0, longest * 1000);
	return 0;
}
