"""twistd plugins for clearwater's network functions.

This module holds ``ServiceMaker`` objects only (``twisted.application.service.ServiceMaker``
imports each function's ``clearwater.services.<function>.tap`` lazily). There is deliberately no
``__init__.py`` in ``twisted/`` or ``twisted/plugins/``. Network functions are added here as they
land; none has yet.
"""
