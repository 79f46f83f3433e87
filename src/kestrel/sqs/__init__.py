"""
The SQS-compatible HTTP API (doc/sqs.md): Amazon SQS's JSON and query wire formats over
twisted.web, AWS Signature Version 4, applications and their grants, on the same queues as
every other protocol.
"""
