# @EXPECTED_RESULTS@: RUN-ERROR
raise ValueError("no answer here")
