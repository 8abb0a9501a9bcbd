/* threadbomb (hostile): create sleeping threads until that fails, print "threads=N" (the main
 * thread not counted), then keep trying forever. The process limit counts threads too. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <unistd.h>

static void *sleep_forever(void *unused)
{
	(void)unused;
	for (;;) pause();
	return NULL;
}

int main(void)
{
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	int created = 0, reported = 0;
	for (;;) {
		pthread_t thread;
		if (pthread_create(&thread, &attr, sleep_forever, NULL) == 0) {
			created++;
		} else if (!reported) {
			printf("threads=%d\n", created);
			fflush(stdout);
			reported = 1;
		} else {
			sched_yield();
		}
	}
}
