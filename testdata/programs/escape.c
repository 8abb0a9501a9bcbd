/* escape PIDFILE (hostile): double fork and setsid, the classic way to leave a process behind.
 * The grandchild ignores SIGHUP and SIGTERM, writes its pid to PIDFILE and sleeps forever; the
 * program itself exits 0 as soon as the grandchild is up. The runner must kill and reap it. */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Write our pid to path atomically (write a temporary file, then rename). */
static void publish_pid(const char *path)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (f == NULL) _exit(1);
	fprintf(f, "%d\n", getpid());
	if (fclose(f) != 0 || rename(tmp, path) != 0) _exit(1);
}

static void wait_for_file(const char *path)
{
	const struct timespec millisecond = {0, 1000000};
	for (int i = 0; i < 5000 && access(path, F_OK) != 0; i++) nanosleep(&millisecond, NULL);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: escape PIDFILE\n");
		return 2;
	}
	pid_t child = fork();
	if (child == 0) {
		setsid();
		if (fork() == 0) {
			signal(SIGHUP, SIG_IGN);
			signal(SIGTERM, SIG_IGN);
			publish_pid(argv[1]);
			for (;;) pause();
		}
		_exit(0);
	}
	waitpid(child, NULL, 0);
	wait_for_file(argv[1]);
	return 0;
}
