/* orphan PIDFILE (hostile): fork a child that outlives us. The child writes its pid to PIDFILE
 * and sleeps forever; we exit 0 once it is up. The runner must kill and reap the child. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: orphan PIDFILE\n");
		return 2;
	}
	if (fork() == 0) {
		char tmp[4096];
		snprintf(tmp, sizeof tmp, "%s.tmp", argv[1]);
		FILE *f = fopen(tmp, "w");
		if (f == NULL) _exit(1);
		fprintf(f, "%d\n", getpid());
		if (fclose(f) != 0 || rename(tmp, argv[1]) != 0) _exit(1);
		for (;;) pause();
	}
	const struct timespec millisecond = {0, 1000000};
	for (int i = 0; i < 5000 && access(argv[1], F_OK) != 0; i++) nanosleep(&millisecond, NULL);
	return 0;
}
