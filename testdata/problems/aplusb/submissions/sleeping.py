# @EXPECTED_RESULTS@: TIMELIMIT
# Uses no CPU: only the wall-clock limit catches it.
import time
time.sleep(60)
