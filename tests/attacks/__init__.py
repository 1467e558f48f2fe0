"""The adversarial suite: each attack runs as a real job (or against the real runner code) and
asserts the job's final state and the absence of the side effect the attack was after."""
