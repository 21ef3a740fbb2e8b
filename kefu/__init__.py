"""What every kefu package stands on; imports none of them.

Redis key scheme (`keys`) and client (`redis`), the conversation record (`conversation`), agent
accounts and sessions (`accounts`), the escalations stream (`escalations`), the error base and
the one error-to-HTTP mapping (`errors`, `http`), the page helper and UI kit of the browser pages
(`pages`, ``ui/``), the reply language (`language`), the CLI root (`cli`) and the stack supervisor
(`stack`).
"""

from kefu.keys import KEY_PREFIX

__all__ = ["KEY_PREFIX"]
