"""Failures of one cause share a fingerprint; failures of two causes do not."""

from queueapp.fingerprint import error_group, fingerprint


def test_what_differs_between_occurrences_is_folded():
    assert fingerprint("APNs rejected device token 8f3a9c0d2b1e4f5a6b7c8d9e0f1a2b3c") == \
        "APNs rejected device token <id>"
    assert fingerprint("SMTP 550 mailbox unavailable for user42@example.com") == \
        "SMTP <n> mailbox unavailable for <email>"
    assert fingerprint("timeout calling https://api.example/pay?key=s3cret&amount=12") == \
        "timeout calling https://api.example/pay?key=<v>&amount=<v>"
    assert fingerprint("request a1b2c3d4-e5f6-4711-8a9b-0c1d2e3f4a5b failed") == "request <uuid> failed"
    assert fingerprint("session tok_9f8e7d6c5b4a3x expired") == "session <id> expired"
    assert fingerprint("order 12345 not found   (after  2.5 s)") == "order <n> not found (after <n> s)"


def test_different_causes_stay_apart():
    assert error_group("KeyError: 'price'") != error_group("KeyError: 'to'")
    assert error_group("ValueError: bad") != error_group("TypeError: bad")
    assert error_group("deadbeef is a word here") == error_group("deadbeef is a word here")
    tokens = {error_group(f"push to device {i:040x} failed") for i in range(1, 31)}  # digits only, and hex
    assert len(tokens) == 1 and error_group(None) is None
