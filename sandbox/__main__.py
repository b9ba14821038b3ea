from sandbox.cli import run

run()
