# The seed's downloadOSS function (JD Cloud "OSS trigger example"), kept as written except that
# the endpoint and the access keys come from the environment:
#   S3_ENDPOINT           default https://s3.{region}.jdcloud-oss.com, as in the seed
#   S3_ACCESS_KEY_ID      the seed's '用户AK' (user access key)
#   S3_SECRET_ACCESS_KEY  the seed's '用户SK' (user secret key)
# It needs boto3 (pip install boto3).
import os

import boto3


def handler(event, context):
  access_key = os.environ.get('S3_ACCESS_KEY_ID', '')
  secret_key = os.environ.get('S3_SECRET_ACCESS_KEY', '')

  region = event['Records'][0]['region']
  bucket_name = event['Records'][0]['detail']['s3']['bucket']['name']
  object_name = event['Records'][0]['detail']['s3']['object']['key']

  endpoint = os.environ.get('S3_ENDPOINT') or 'https://s3.{}.jdcloud-oss.com'.format(region)
  s3 = boto3.client(
    service_name='s3',
    aws_access_key_id=access_key,
    aws_secret_access_key=secret_key,
    endpoint_url=endpoint
  )

  # download file
  try:
    response = s3.get_object(Bucket=bucket_name, Key=object_name)
    if response['ResponseMetadata']['HTTPStatusCode'] != 200:
      print("download file failed")
      return "download file failed"
    stream = response['Body']
    chunk_size = 1024
    with open('/tmp/test', 'wb') as f:
      while True:
        data = stream.read(chunk_size)
        if not len(data):
          break
        print(data)
        f.write(data)
  except Exception as e:
    print(str(e))
    print("download file failed")
    return "download file failed"

  print("download file successfully")
  return "download file successfully"
