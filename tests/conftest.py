pytest_plugins = [
    "tests.fixtures_docker",
    "tests.fixtures_runner",
    "tests.fixtures_envs",
    "tests.fixtures_s3",
    "tests.fixtures_sync",
]
