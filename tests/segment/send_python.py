"""analytics-python (PyPI segment-analytics-python), unchanged but for its host: sends
every call type, one request per call (sync_mode) and queued in batches, then prints
the messages the library built, as JSON, for the test to find in the events API.

usage: python send_python.py HOST WRITE_KEY
"""
import json
import sys

from segment.analytics import Client

host, write_key = sys.argv[1], sys.argv[2]
sent = []
errors = []


def keep(result):
    queued, message = result
    assert queued, message
    sent.append(message)


def calls(client, tag):
    user, anonymous = "py-user-" + tag, "py-anon-" + tag
    context = {"ip": "192.0.2.10", "userAgent": "python-test", "campaign": {"name": "launch", "source": "newsletter"}}
    keep(client.page(anonymous_id=anonymous, category="Docs", name="Install", properties={"path": "/docs/install"}, context=dict(context)))
    keep(client.screen(anonymous_id=anonymous, name="Home", properties={"tab": "feed"}))
    keep(client.identify(user_id=user, anonymous_id=anonymous, traits={"plan": "pro", "email": tag + "@example.com"}))
    keep(client.track(user_id=user, event="Order Completed", properties={"total": 30.5, "items": [{"sku": "a", "qty": 2}]}, context=dict(context)))
    keep(client.group(user_id=user, group_id="py-group-" + tag, traits={"name": "Acme", "employees": 12}))
    keep(client.alias(previous_id=anonymous, user_id=user))


single = Client(write_key=write_key, host=host, sync_mode=True, on_error=lambda e, b: errors.append(repr(e)))
calls(single, "single")

batched = Client(write_key=write_key, host=host, upload_size=100, upload_interval=0.2, on_error=lambda e, b: errors.append(repr(e)))
calls(batched, "batched")
# The test's proxy loses the answer to the first batch holding this event: the library
# retries that batch (X-Retry-Count: 1), and the service must store it once.
keep(batched.track(anonymous_id="py-anon-batched", event="Retried Batch", properties={"attempt": "first"}))
batched.flush()
batched.join()

if errors:
    sys.exit("the library reported errors: " + "; ".join(errors))
print(json.dumps(sent))
