/* selfstop (hostile): stop ourselves with SIGSTOP. Only the wall-clock limit can end the run,
 * and a stopped process must still be killed and reaped. */
#include <signal.h>

int main(void)
{
	raise(SIGSTOP);
	return 0;
}
