/* ipc make|probe: `make` creates a System V shared memory segment, message queue and semaphore
 * set under a fixed key, and a POSIX message queue; `probe` prints which of them it can see,
 * as `shm=1 msg=1 sem=1 mq=1` (1: found). A warm sandbox must show the next run none of them. */
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>

#define KEY 0x4a554447
#define QUEUE "/judged-test-queue"

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "make") == 0) {
		int ok = shmget(KEY, 4096, IPC_CREAT | 0666) >= 0 && msgget(KEY, IPC_CREAT | 0666) >= 0 &&
			 semget(KEY, 1, IPC_CREAT | 0666) >= 0;
		mqd_t queue = mq_open(QUEUE, O_CREAT | O_RDWR, 0666, NULL);
		if (!ok || queue == (mqd_t)-1) {
			printf("make failed: %s\n", strerror(errno));
			return 1;
		}
		printf("made\n");
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "probe") == 0) {
		mqd_t queue = mq_open(QUEUE, O_RDONLY);
		printf("shm=%d msg=%d sem=%d mq=%d\n", shmget(KEY, 0, 0) >= 0, msgget(KEY, 0) >= 0,
		       semget(KEY, 0, 0) >= 0, queue != (mqd_t)-1);
		return 0;
	}
	fprintf(stderr, "usage: ipc make|probe\n");
	return 2;
}
