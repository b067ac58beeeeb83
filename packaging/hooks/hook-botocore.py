"""Replaces the contrib hook's ``collect_data_files('botocore')`` (28 MB of models for every AWS
service) with what the S3 store uses: the S3 model, STS and SSO for boto3's credential chain
(assume-role and SSO profiles), the endpoint/partition/retry/defaults tables and the CA bundle.
A hook in the spec's ``hookspath`` takes precedence over the contrib one. If the store ever
calls another service, add its folder here; the smoke test opens an S3 client to catch a miss.
"""

from PyInstaller.utils.hooks import collect_data_files

hiddenimports = ["html.parser"]  # as the contrib hook: botocore imports it lazily

datas = collect_data_files("botocore", includes=[
    "cacert.pem",
    "data/*.json",
    "data/s3/**/*",
    "data/sts/**/*",
    "data/sso/**/*",
    "data/sso-oidc/**/*",
])
