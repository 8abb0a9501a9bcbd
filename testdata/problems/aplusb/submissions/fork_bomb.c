// @EXPECTED_RESULTS@: TIMELIMIT,RUN-ERROR
// The run's process limit makes fork fail; the bomb then spins until a limit stops it.
#include <unistd.h>
int main(void) {
    for (;;) fork();
}
