"""The Graph as TensorBoard's GraphDef (tensorboardX's protobuf), so that
`SummaryWriter.add_graph` shows the same nodes: ops named by module scope
('features/fc1/Linear_op3'), parameters by their names, shapes on the edges."""
from __future__ import annotations

from ...logging import load_tensorboardx

load_tensorboardx()  # before tensorboardX's protos, which would load torch

from tensorboardX.proto.attr_value_pb2 import AttrValue
from tensorboardX.proto.graph_pb2 import GraphDef
from tensorboardX.proto.node_def_pb2 import NodeDef
from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto
from tensorboardX.proto.versions_pb2 import VersionDef

from .nodes import OpNode


def scoped(node) -> str:
    """The node's TensorBoard name: module path as scopes, then the op or tensor name."""
    if isinstance(node, OpNode):
        scope = node.module.replace(".", "/")
        return f"{scope}/{node.op}_{node.key}" if scope else f"{node.op}_{node.key}"
    if node.kind == "parameter":
        return node.name.replace(".", "/")
    return f"{node.kind}/{node.name}_{node.key}"


def graphdef(graph) -> GraphDef:
    """One NodeDef per node of `graph` (folding does not apply: TensorBoard folds by scope)."""
    names = {k: scoped(n) for k, n in graph.nodes.items()}
    nodes = []
    for k, n in graph.nodes.items():
        shape = TensorShapeProto(dim=[TensorShapeProto.Dim(size=int(s)) for s in graph.shape(k)])
        attr = {"_output_shapes": AttrValue(list=AttrValue.ListValue(shape=[shape]))}
        if isinstance(n, OpNode) and n.trace:
            attr["trace"] = AttrValue(s=str(n.trace).encode())
        op = n.op if isinstance(n, OpNode) else n.kind.capitalize()
        nodes.append(NodeDef(name=names[k], op=op, input=[names[i] for i in n.inputs], attr=attr))
    return GraphDef(node=nodes, versions=VersionDef(producer=22))
