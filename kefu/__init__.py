"""Cross-cutting pieces shared by every kefu package: Redis key scheme, Redis client, CLI root."""

from kefu.keys import KEY_PREFIX

__all__ = ["KEY_PREFIX"]
