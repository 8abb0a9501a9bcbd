/* ipcns-churn.c - IPC-namespace churn, the reproducer of `ipc-ns-teardown`: LOOPS processes
 * in parallel each make N/LOOPS IPC namespaces and drop them at once: fork, the child moves
 * itself into a fresh cgroup below CGROUP_PARENT (when given) and calls unshare(CLONE_NEWIPC),
 * then exits; the parent reaps it and removes the cgroup. The VM lane checks the finding with
 * it on Linux 6.1 (ci/vm/guest/run-tests); ci/vm/demo-findings shows the figures. Built with
 * gcc -static on the host. A shell loop of `unshare -i true` is too slow for this under QEMU's
 * TCG (about 25 a second, below the ~50 a second Linux 6.1 frees): no backlog would build.
 * Usage: ipcns-churn N LOOPS [CGROUP_PARENT]
 * Prints one line: namespaces made, failures, seconds. Exit status 1 if any failed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int loop(int id, int count, const char *parent)
{
	int failed = 0;
	char cg[4096], procs[4200];
	for (int i = 0; i < count; i++) {
		if (parent) {
			snprintf(cg, sizeof cg, "%s/demo-%d-%d", parent, id, i);
			snprintf(procs, sizeof procs, "%s/cgroup.procs", cg);
			if (mkdir(cg, 0755) != 0) {
				fprintf(stderr, "ipcns-churn: mkdir %s: %s\n", cg, strerror(errno));
				return count;
			}
		}
		pid_t pid = fork();
		if (pid < 0) {
			perror("ipcns-churn: fork");
			return count;
		}
		if (pid == 0) {
			if (parent) {
				int fd = open(procs, O_WRONLY);
				if (fd < 0 || write(fd, "0", 1) != 1)
					_exit(2);
				close(fd);
			}
			_exit(unshare(CLONE_NEWIPC) == 0 ? 0 : 3);
		}
		int status;
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
		/* The group is empty once its only process is reaped; retry briefly if not yet. */
		for (int tries = 0; parent && rmdir(cg) != 0; tries++) {
			if (tries == 50) {
				fprintf(stderr, "ipcns-churn: rmdir %s: %s\n", cg, strerror(errno));
				break;
			}
			usleep(10000);
		}
	}
	return failed;
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: ipcns-churn N LOOPS [CGROUP_PARENT]\n");
		return 2;
	}
	int total = atoi(argv[1]), loops = atoi(argv[2]);
	const char *parent = argc > 3 ? argv[3] : NULL;
	if (total < 1 || loops < 1) {
		fprintf(stderr, "ipcns-churn: N and LOOPS must be positive\n");
		return 2;
	}
	struct timespec start, end;
	clock_gettime(CLOCK_MONOTONIC, &start);
	int pipes[2];
	if (pipe(pipes) != 0)
		return 2;
	for (int l = 0; l < loops; l++) {
		if (fork() == 0) {
			close(pipes[0]);
			int failed = loop(l, total / loops, parent);
			if (write(pipes[1], &failed, sizeof failed) != sizeof failed)
				_exit(2);
			_exit(0);
		}
	}
	close(pipes[1]);
	int failed = 0, one;
	while (read(pipes[0], &one, sizeof one) == sizeof one)
		failed += one;
	while (wait(NULL) > 0)
		;
	clock_gettime(CLOCK_MONOTONIC, &end);
	double seconds = (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) / 1e9;
	int made = total / loops * loops;
	printf("ipcns-churn: %d IPC namespaces in %d loops%s in %.1f s (%.0f a second), %d failed\n",
	       made, loops, parent ? ", each in a fresh cgroup," : "", seconds, made / seconds, failed);
	return failed ? 1 : 0;
}
