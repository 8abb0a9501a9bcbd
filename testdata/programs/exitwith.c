/* exitwith code N | exitwith signal N: end with exit status N, or by signal N (default action). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: exitwith code|signal N\n");
		return 2;
	}
	int n = atoi(argv[2]);
	if (strcmp(argv[1], "signal") == 0) {
		signal(n, SIG_DFL);
		raise(n);
		return 2;
	}
	return n;
}
