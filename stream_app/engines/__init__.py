"""The two ways survey responses come into a worker; both hand batches to one pipeline.

* ``batch`` (default): a confluent-kafka consume loop on a thread of its own, batch by batch.
* ``agent``: a Faust agent over ``Stream.noack_take``, Faust's own consumer.

Each engine only consumes and acknowledges; labelling and making a batch durable is
``stream_app.pipeline``, and readiness, the lag gauge, failing and stopping are
``stream_app.runtime``, shared by both.
"""
