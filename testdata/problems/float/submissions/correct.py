# @EXPECTED_RESULTS@: CORRECT
# Prints fewer digits than the answer file: within the float tolerance.
n = int(input())
print(f"{1 / n:.9f}")
