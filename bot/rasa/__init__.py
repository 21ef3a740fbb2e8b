"""kefu's Rasa project: data, domain, endpoints, the NLU component, the patched server, training.

`components` and `serve` run in the Rasa venv (Python with ``rasa``), never in kefu's;
`training` runs in kefu's venv and calls the Rasa venv's ``rasa train`` only when the model's
inputs changed.
"""
