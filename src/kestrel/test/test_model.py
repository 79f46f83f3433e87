"""
The model-based test of the engine (issue 10), CI form: a bounded number of examples of the
state machine in src/kestrel/test/model.py, which drives the real collection, queues, journal
writer thread and files, and compares them after every step with a reference model.

The long form runs for as long as it is given, with fresh seeds:

    .venv/bin/python -m kestrel.test.model --minutes 30
"""

from kestrel.test.model import ModelMachine, machine_settings

TestEngineAgainstModel = ModelMachine.TestCase
TestEngineAgainstModel.settings = machine_settings(examples=700, steps=100)
