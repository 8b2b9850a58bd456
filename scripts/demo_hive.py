"""Register the demo images in a Hive metastore, as a user's own tool would: the raw Thrift
client, not epipe. A database at the project, a table at ROOT/train partitioned by
`session`, a partition per session directory. Idempotent: what exists is kept.

usage: demo_hive.py URL PREFIX PROJECT_DIR TABLE_DIR SESSION...
"""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

from pymetastore.hive_metastore import ThriftHiveMetastore
from pymetastore.hive_metastore import ttypes as hive
from thrift.protocol import TBinaryProtocol
from thrift.transport import TSocket, TTransport


def storage(location: str) -> hive.StorageDescriptor:
    return hive.StorageDescriptor(
        cols=[hive.FieldSchema("image", "string", ""), hive.FieldSchema("labels", "string", "")],
        location=location,
        inputFormat="org.apache.hadoop.mapred.TextInputFormat",
        outputFormat="org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat",
        serdeInfo=hive.SerDeInfo(
            serializationLib="org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe", parameters={}
        ),
        parameters={},
    )


def main(url: str, prefix: str, project_dir: str, table_dir: str, sessions: list[str]) -> None:
    parts = urlsplit(url)
    transport = TTransport.TBufferedTransport(TSocket.TSocket(parts.hostname, parts.port))
    transport.open()
    client = ThriftHiveMetastore.Client(TBinaryProtocol.TBinaryProtocol(transport))
    try:
        if "demo" not in client.get_all_databases():
            client.create_database(
                hive.Database(name="demo", locationUri=prefix + project_dir, parameters={})
            )
        if "train" not in client.get_all_tables("demo"):
            client.create_table(
                hive.Table(
                    tableName="train",
                    dbName="demo",
                    sd=storage(prefix + table_dir),
                    partitionKeys=[hive.FieldSchema("session", "string", "")],
                    tableType="EXTERNAL_TABLE",
                    parameters={"EXTERNAL": "TRUE"},
                )
            )
        have = {name.split("=", 1)[1] for name in client.get_partition_names("demo", "train", -1)}
        new = [s for s in sessions if s not in have]
        if new:
            client.add_partitions(
                [
                    hive.Partition(
                        values=[s],
                        dbName="demo",
                        tableName="train",
                        sd=storage(f"{prefix}{table_dir}/{s}"),
                        parameters={},
                    )
                    for s in new
                ]
            )
        print(f"demo.train: {len(have) + len(new)} partitions ({len(new)} registered now)")
    finally:
        transport.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:])
