/* fibtest SECONDS [SLOW]: CFS bandwidth throttling in small, after Indeed's fibtest. One fast
 * thread computes Fibonacci numbers without a pause; SLOW threads (default 4) each wake every
 * 10 ms for a sliver of work. Under a CPU quota below one CPU the fast thread spends the
 * group's quota early in each 100 ms period, and then every thread of the group, the slow ones
 * too, waits for the next period: a 10 ms sleep then takes up to ~100 ms. Prints the slow
 * threads' worst wake-up delay; exits after SECONDS of wall time. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double seconds;
static volatile int done;
static double worst_delay_ms;
static pthread_mutex_t worst_lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *fast(void *unused)
{
	volatile unsigned long a = 0, b = 1;
	(void)unused;
	while (!done) {
		unsigned long next = a + b;
		a = b;
		b = next;
	}
	return NULL;
}

static void *slow(void *unused)
{
	const struct timespec ten_ms = {0, 10 * 1000 * 1000};
	(void)unused;
	while (!done) {
		double asleep = now();
		nanosleep(&ten_ms, NULL);
		double late_ms = (now() - asleep) * 1000 - 10;
		pthread_mutex_lock(&worst_lock);
		if (late_ms > worst_delay_ms)
			worst_delay_ms = late_ms;
		pthread_mutex_unlock(&worst_lock);
		for (volatile int i = 0; i < 10000; i++)
			;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	seconds = argc > 1 ? atof(argv[1]) : 1;
	int slow_threads = argc > 2 ? atoi(argv[2]) : 4;
	pthread_t threads[65];
	int count = 0;
	if (slow_threads < 0 || slow_threads > 64) {
		fprintf(stderr, "fibtest: SLOW must be 0..64\n");
		return 2;
	}
	pthread_create(&threads[count++], NULL, fast, NULL);
	for (int i = 0; i < slow_threads; i++)
		pthread_create(&threads[count++], NULL, slow, NULL);
	struct timespec whole = {(time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9)};
	nanosleep(&whole, NULL);
	done = 1;
	for (int i = 0; i < count; i++)
		pthread_join(threads[i], NULL);
	printf("worst wake-up delay of the slow threads: %.1f ms\n", worst_delay_ms);
	return 0;
}
