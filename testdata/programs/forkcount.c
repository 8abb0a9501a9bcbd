/* forkcount: fork sleeping children until fork fails, print "children=N", then kill and reap
 * them and exit 0. Under a process limit of P for the run, N must be exactly P - 1. */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_CHILDREN 4096

int main(void)
{
	static pid_t children[MAX_CHILDREN];
	int count = 0;
	while (count < MAX_CHILDREN) {
		pid_t pid = fork();
		if (pid < 0) break;
		if (pid == 0) {
			pause();
			_exit(0);
		}
		children[count++] = pid;
	}
	printf("children=%d\n", count);
	fflush(stdout);
	for (int i = 0; i < count; i++) kill(children[i], SIGKILL);
	for (int i = 0; i < count; i++) waitpid(children[i], NULL, 0);
	return 0;
}
