"""kefu's Rasa project: data, domain, endpoints, the NLU component and the patched server.

`components` and `serve` run in the Rasa venv (Python with ``rasa``), never in kefu's.
"""
