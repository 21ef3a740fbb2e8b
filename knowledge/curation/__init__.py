"""Curating the knowledge base: what knowledge managers do before and after a version goes live.

Upload and validate a file, keep it as a draft, review it (diff against live, close question
pairs, campaign calendar, test gate), try questions against it, publish or roll back
(:mod:`~knowledge.curation.admin`, its HTTP routes and page in :mod:`~knowledge.curation.admin_api`
and ``admin_ui/``, the same from the shell in :mod:`~knowledge.curation.cli` and
:mod:`~knowledge.curation.admin_cli`); measure the decision on labelled questions
(:mod:`~knowledge.curation.evaluation`); learn from the questions the bot could not handle
(:mod:`~knowledge.curation.topics`).

Curation sits above answering: it builds indexes and asks the knowledge service, never the other
way round. Nothing is imported here; the modules pull in FastAPI, the model or numpy as they need.
"""
