"""Deep partial updating: rounds of updates that change a fraction ``k`` of a deployed model.

Public API::

    from weightshare.updating import encode_update, decode_update
    blob, changed = encode_update(new_state, deployed_state, coding="lossless")
    device_state = decode_update(blob, deployed_state).state

:mod:`weightshare.codecs.update` (numpy only) is the file and the device side;
``methods``/``selection``/``masked_training``
the server's training; ``driver`` the rounds; ``replay`` rebuilds every round from the files.
See docs/updating.md.
"""

from weightshare.codecs.update import (  # the update file, re-exported
    CODINGS,
    DecodedUpdate,
    decode_update,
    encode_update,
)

__all__ = ["CODINGS", "DecodedUpdate", "decode_update", "encode_update"]
