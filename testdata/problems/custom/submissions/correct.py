# @EXPECTED_RESULTS@: CORRECT
# Any split is correct; this one differs from the answer files.
n = int(input())
print(0, n)
