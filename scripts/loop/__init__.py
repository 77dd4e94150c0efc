"""The whole loop, unattended (issue 11): streamers → recordings → reviewed transcripts → fine-tune →
new ASRModel → Rollout 5 → 50 → 100 → promoted; then a planted bad candidate → rolled back.

``python -m scripts.loop run`` (``make demo-loop``) drives it on the local stack; ``down`` cleans up.
Pure parts (the streamers' scripts and the alignment of finals to them, the timeline's formatting) are
separate from the I/O so they are table-tested in ``tests/loop/``.
"""
