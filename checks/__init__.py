"""The babysit check catalog (shipped as ``babysit.checks``): one check per module.

Each module defines one :class:`babysit.check.Check` subclass whose docstring is the rule's
documentation. ``babysit checks`` lists them; ``babysit explain ID`` prints one.
"""
