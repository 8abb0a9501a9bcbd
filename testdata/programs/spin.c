/* spin SECONDS THREADS: burn CPU in THREADS threads until the whole process has used SECONDS of
 * CPU time (SECONDS < 0: forever). Used for CPU limits, their accounting and CPU pinning. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_THREADS 64

static double target_seconds;

static double process_cpu_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *burn(void *unused)
{
	volatile unsigned long sink = 0;
	(void)unused;
	for (;;) {
		for (unsigned long i = 0; i < 200000; i++) sink += i;
		if (target_seconds >= 0 && process_cpu_seconds() >= target_seconds) return NULL;
	}
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: spin SECONDS THREADS\n");
		return 2;
	}
	target_seconds = atof(argv[1]);
	int threads = atoi(argv[2]);
	if (threads < 1 || threads > MAX_THREADS) return 2;

	pthread_t others[MAX_THREADS];
	for (int i = 1; i < threads; i++) pthread_create(&others[i], NULL, burn, NULL);
	burn(NULL);
	for (int i = 1; i < threads; i++) pthread_join(others[i], NULL);
	printf("done\n");
	return 0;
}
