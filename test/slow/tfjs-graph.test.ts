/**
 * TensorFlow.js graph models → ONNX: hand-written model.json files (TF op names and attributes as
 * tensorflowjs_converter writes them: base64 strings, ints as strings) with seeded weights, run by
 * tfjs's own GraphModel (tf.loadGraphModel over the same files) and, converted, by onnxruntime.
 * Every supported op must agree to 1e-4.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadModel } from '../../src/core/model/load';
import {
  A,
  artifactsFromDir,
  assertClose,
  placeholder,
  randomInput,
  runConverted,
  tempDir,
  tf,
  tfReady,
  writeGraphModel,
  type GraphNodeJson,
  type GraphWeight,
} from './tfjs-helpers';

const n = (name: string, op: string, input: string[], attr: Record<string, unknown> = {}): GraphNodeJson => ({ name, op, input, attr });
const w = (name: string, shape: number[], seed: number, scale = 0.5): GraphWeight => ({ name, shape, data: randomInput(shape, seed, scale) });
const ints = (name: string, data: number[], shape = [data.length]): GraphWeight => ({ name, shape, dtype: 'int32', data });
const positive = (name: string, shape: number[], seed: number): GraphWeight => ({
  name,
  shape,
  data: randomInput(shape, seed, 0.5).map((v) => 0.5 + Math.abs(v)),
});

const NHWC = A.s('NHWC');
const conv = (
  name: string,
  x: string,
  f: string,
  o: { strides?: number[]; padding?: string; dilations?: number[]; fused?: string[]; args?: string[]; extra?: Record<string, unknown>; op?: string } = {},
): GraphNodeJson =>
  n(name, o.op ?? (o.fused ? '_FusedConv2D' : 'Conv2D'), [x, f, ...(o.args ?? [])], {
    T: A.type(),
    strides: A.ints(o.strides ?? [1, 1, 1, 1]),
    padding: A.s(o.padding ?? 'VALID'),
    data_format: NHWC,
    dilations: A.ints(o.dilations ?? [1, 1, 1, 1]),
    ...(o.fused ? { fused_ops: A.strs(o.fused), num_args: A.i(o.args?.length ?? 0), epsilon: A.f(0) } : {}),
    explicit_paddings: { list: {} },
    use_cudnn_on_gpu: A.b(true),
    ...o.extra,
  });
const pool = (name: string, op: string, x: string, k: number[], s: number[], padding: string) =>
  n(name, op, [x], { T: A.type(), ksize: A.ints(k), strides: A.ints(s), padding: A.s(padding), data_format: NHWC });

interface GraphCase {
  name: string;
  input: number[];
  nodes: GraphNodeJson[];
  weights: GraphWeight[];
  output: string;
  scale?: number;
  /** Positive inputs (for Log, Sqrt). */
  positive?: boolean;
}

async function runTfjs(json: string, x: tf.Tensor, output: string): Promise<tf.Tensor> {
  const model = await tf.loadGraphModel(tf.io.fromMemory(artifactsFromDir(json)));
  return model.execute({ x }, output) as tf.Tensor;
}

async function check(c: GraphCase): Promise<void> {
  await tfReady();
  const dims = [2, ...c.input];
  const signature = {
    inputs: { x: { name: 'x:0', dtype: 'DT_FLOAT', tensorShape: { dim: [-1, ...c.input].map((d) => ({ size: String(d) })) } } },
    outputs: { y: { name: `${c.output}:0` } },
  };
  const json = writeGraphModel(tempDir(c.name.replace(/\W+/g, '_')), [placeholder('x', [-1, ...c.input]), ...c.nodes], c.weights, { signature });
  let x = randomInput(dims, 11, c.scale ?? 1);
  if (c.positive) x = x.map((v) => 0.1 + Math.abs(v));
  const expected = await runTfjs(json, tf.tensor(x, dims), c.output);
  const got = await runConverted(json, x, dims);
  assert.deepEqual(got.dims, expected.shape, `${c.name}: output shape`);
  assertClose(got.out, expected.dataSync(), 1e-4, c.name);
}

const CASES: GraphCase[] = [
  {
    name: 'Conv2D SAME stride 2 (odd size), BiasAdd, Relu',
    input: [7, 7, 3],
    output: 'relu',
    nodes: [
      conv('conv', 'x', 'k', { strides: [1, 2, 2, 1], padding: 'SAME' }),
      n('bias', 'BiasAdd', ['conv', 'b'], { T: A.type(), data_format: NHWC }),
      n('relu', 'Relu', ['bias']),
    ],
    weights: [w('k', [3, 3, 3, 4], 1), w('b', [4], 2)],
  },
  {
    name: '_FusedConv2D BiasAdd+Relu6, dilated',
    input: [9, 9, 2],
    output: 'fc',
    scale: 4,
    nodes: [conv('fc', 'x', 'k', { dilations: [1, 2, 2, 1], fused: ['BiasAdd', 'Relu6'], args: ['b'] })],
    weights: [w('k', [3, 3, 2, 3], 3, 1), w('b', [3], 4)],
  },
  {
    name: '_FusedConv2D BiasAdd+Prelu and BiasAdd+LeakyRelu, EXPLICIT padding',
    input: [6, 6, 2],
    output: 'fc2',
    nodes: [
      conv('fc1', 'x', 'k1', { fused: ['BiasAdd', 'Prelu'], args: ['b1', 'alpha'], padding: 'SAME' }),
      conv('fc2', 'fc1', 'k2', {
        fused: ['BiasAdd', 'LeakyRelu'],
        args: ['b2'],
        padding: 'EXPLICIT',
        extra: { explicit_paddings: A.ints([0, 0, 1, 2, 0, 1, 0, 0]), leakyrelu_alpha: A.f(0.3) },
      }),
    ],
    weights: [w('k1', [3, 3, 2, 4], 5), w('b1', [4], 6), w('alpha', [4], 7), w('k2', [2, 2, 4, 3], 8), w('b2', [3], 9)],
  },
  {
    name: 'DepthwiseConv2dNative and FusedDepthwiseConv2dNative (BiasAdd+Elu)',
    input: [7, 7, 3],
    output: 'dw2',
    nodes: [
      conv('dw1', 'x', 'k1', { op: 'DepthwiseConv2dNative', strides: [1, 2, 2, 1], padding: 'SAME' }),
      conv('dw2', 'dw1', 'k2', { op: 'FusedDepthwiseConv2dNative', fused: ['BiasAdd', 'Elu'], args: ['b2'] }),
    ],
    weights: [w('k1', [3, 3, 3, 2], 10), w('k2', [2, 2, 6, 1], 11), w('b2', [6], 12)],
  },
  {
    name: 'MatMul (transpose_b) and _FusedMatMul (BiasAdd+Relu), Sigmoid, Tanh',
    input: [6],
    output: 'tanh',
    nodes: [
      n('mm', 'MatMul', ['x', 'w1'], { T: A.type(), transpose_a: A.b(false), transpose_b: A.b(true) }),
      n('sig', 'Sigmoid', ['mm']),
      n('fmm', '_FusedMatMul', ['sig', 'w2', 'b2'], {
        T: A.type(),
        transpose_a: A.b(false),
        transpose_b: A.b(false),
        fused_ops: A.strs(['BiasAdd', 'Relu']),
        num_args: A.i(1),
        epsilon: A.f(0),
      }),
      n('tanh', 'Tanh', ['fmm']),
    ],
    weights: [w('w1', [5, 6], 13), w('w2', [5, 4], 14), w('b2', [4], 15)],
  },
  {
    name: 'arithmetic with constants broadcast against an NCHW-held value',
    input: [5, 5, 2],
    output: 'out',
    nodes: [
      conv('c', 'x', 'k'),
      n('mul', 'Mul', ['c', 'per_channel']),
      n('add', 'AddV2', ['mul', 'per_row']),
      n('sub', 'Sub', ['scalar', 'add']),
      n('div', 'RealDiv', ['sub', 'pos']),
      n('addv1', 'Add', ['div', 'c']),
      n('mx', 'Maximum', ['addv1', 'c']),
      n('mn', 'Minimum', ['mx', 'scalar']),
      n('sq', 'Square', ['mn']),
      n('neg', 'Neg', ['sq']),
      n('abs', 'Abs', ['neg']),
      n('sqrt', 'Sqrt', ['abs']),
      n('rs', 'Rsqrt', ['pos_full']),
      n('m2', 'Mul', ['sqrt', 'rs']),
      n('exp', 'Exp', ['m2']),
      n('log', 'Log', ['exp']),
      n('out', 'Mul', ['log', 'per_channel']),
    ],
    weights: [
      w('k', [1, 1, 2, 3], 16),
      w('per_channel', [3], 17),
      w('per_row', [5, 1, 1], 18),
      w('scalar', [], 19),
      positive('pos', [1, 1, 3], 20),
      positive('pos_full', [5, 1, 3], 21),
    ],
  },
  {
    name: 'activations: Relu6, Elu, Selu, LeakyRelu, Softplus, Softmax, LogSoftmax',
    input: [4, 4, 3],
    output: 'ls',
    scale: 4,
    nodes: [
      n('r6', 'Relu6', ['x']),
      n('sub', 'Sub', ['r6', 'c']),
      n('elu', 'Elu', ['sub']),
      n('selu', 'Selu', ['elu']),
      n('lr', 'LeakyRelu', ['selu'], { alpha: A.f(0.25) }),
      n('sp', 'Softplus', ['lr']),
      n('sm', 'Softmax', ['sp']),
      n('ls', 'LogSoftmax', ['sm']),
    ],
    weights: [w('c', [], 22, 3)],
  },
  {
    name: 'MaxPool and AvgPool SAME on odd sizes',
    input: [7, 6, 2],
    output: 'ap',
    nodes: [
      conv('c', 'x', 'k'),
      pool('mp', 'MaxPool', 'c', [1, 3, 3, 1], [1, 2, 2, 1], 'SAME'),
      pool('ap', 'AvgPool', 'mp', [1, 2, 3, 1], [1, 1, 2, 1], 'SAME'),
    ],
    weights: [w('k', [1, 1, 2, 2], 23)],
  },
  {
    name: 'Mean over H,W (global pool), Mean keep_dims, Sum and Max with axes',
    input: [5, 4, 3],
    output: 'out',
    nodes: [
      conv('c', 'x', 'k'),
      n('gap', 'Mean', ['c', 'hw'], { keep_dims: A.b(false) }),
      n('mk', 'Mean', ['c', 'ch'], { keep_dims: A.b(true) }),
      n('sum_h', 'Sum', ['mk', 'h'], { keep_dims: A.b(false) }),
      n('max_w', 'Max', ['sum_h', 'w'], { keep_dims: A.b(false) }),
      n('gmp', 'Max', ['c', 'hw'], { keep_dims: A.b(true) }),
      n('flat', 'Reshape', ['gmp', 'flat_shape']),
      n('cat', 'ConcatV2', ['gap', 'max_w', 'flat', 'axis1'], { N: A.i(3) }),
      n('out', 'Sum', ['cat', 'last'], { keep_dims: A.b(true) }),
    ],
    weights: [
      w('k', [1, 1, 3, 3], 24),
      ints('hw', [1, 2]),
      ints('ch', [-1]),
      ints('h', [1]),
      ints('w', [1]),
      ints('flat_shape', [-1, 3]),
      ints('axis1', [], []),
      ints('last', [-1]),
    ].map((x) => (x.name === 'axis1' ? { ...x, data: [1] } : x)),
  },
  {
    name: 'Reshape, Squeeze, ExpandDims, Transpose, ConcatV2 on channels',
    input: [4, 4, 2],
    output: 'sq',
    nodes: [
      conv('c1', 'x', 'k1'),
      conv('c2', 'x', 'k2', { padding: 'SAME' }),
      n('cat', 'ConcatV2', ['c1', 'c2', 'axis'], { N: A.i(2) }),
      n('tr', 'Transpose', ['cat', 'perm']),
      n('rs', 'Reshape', ['tr', 'shape']),
      n('ed', 'ExpandDims', ['rs', 'one']),
      n('sq', 'Squeeze', ['ed'], { squeeze_dims: A.ints([1]) }),
    ],
    weights: [
      w('k1', [1, 1, 2, 2], 25),
      w('k2', [2, 2, 2, 3], 26, 0.3),
      { name: 'axis', shape: [], dtype: 'int32', data: [-1] },
      ints('perm', [0, 3, 1, 2]),
      ints('shape', [-1, 5, 16]),
      { name: 'one', shape: [], dtype: 'int32', data: [1] },
    ],
  },
  {
    name: 'shape arithmetic: Shape, StridedSlice (shrink), Pack, Reshape with a runtime batch',
    input: [3, 3, 2],
    output: 'mm',
    nodes: [
      conv('c', 'x', 'k'),
      n('shape', 'Shape', ['c'], { T: A.type(), out_type: A.type('DT_INT32') }),
      n('batch', 'StridedSlice', ['shape', 'b0', 'b1', 'b1'], {
        Index: A.type('DT_INT32'),
        T: A.type('DT_INT32'),
        begin_mask: A.i(0),
        end_mask: A.i(0),
        ellipsis_mask: A.i(0),
        new_axis_mask: A.i(0),
        shrink_axis_mask: A.i(1),
      }),
      n('dims', 'Pack', ['batch', 'minus1'], { N: A.i(2), T: A.type('DT_INT32'), axis: A.i(0) }),
      n('flat', 'Reshape', ['c', 'dims']),
      n('mm', 'MatMul', ['flat', 'w'], { transpose_a: A.b(false), transpose_b: A.b(false) }),
    ],
    weights: [
      w('k', [2, 2, 2, 3], 27),
      { name: 'b0', shape: [1], dtype: 'int32', data: [0] },
      { name: 'b1', shape: [1], dtype: 'int32', data: [1] },
      { name: 'minus1', shape: [], dtype: 'int32', data: [-1] },
      w('w', [12, 4], 28),
    ],
  },
  {
    name: 'StridedSlice with masks and strides on a 4-D value',
    input: [6, 5, 4],
    output: 'ss2',
    nodes: [
      conv('c', 'x', 'k'),
      n('ss', 'StridedSlice', ['c', 'begin', 'end', 'strides'], {
        begin_mask: A.i(1),
        end_mask: A.i(9),
        ellipsis_mask: A.i(0),
        new_axis_mask: A.i(0),
        shrink_axis_mask: A.i(0),
      }),
      n('ss2', 'StridedSlice', ['ss', 'begin2', 'end2', 'strides2'], {
        begin_mask: A.i(0),
        end_mask: A.i(0),
        ellipsis_mask: A.i(1),
        new_axis_mask: A.i(0),
        shrink_axis_mask: A.i(2),
      }),
    ],
    weights: [
      w('k', [1, 1, 4, 4], 29),
      ints('begin', [0, 1, -4, 0]),
      ints('end', [0, 6, 5, 0]),
      ints('strides', [1, 2, 1, 2]),
      ints('begin2', [0, 1]),
      ints('end2', [0, 2]),
      ints('strides2', [1, 1]),
    ],
  },
  {
    name: 'Pad, PadV2 and MirrorPad (REFLECT)',
    input: [4, 5, 2],
    output: 'mp',
    nodes: [
      conv('c', 'x', 'k'),
      n('pad', 'Pad', ['c', 'p1']),
      n('pad2', 'PadV2', ['pad', 'p2', 'cv']),
      n('mp', 'MirrorPad', ['pad2', 'p3'], { mode: A.s('REFLECT') }),
    ],
    weights: [
      w('k', [1, 1, 2, 2], 30),
      ints('p1', [0, 0, 1, 2, 0, 1, 0, 0], [4, 2]),
      ints('p2', [0, 0, 0, 0, 2, 0, 1, 1], [4, 2]),
      w('cv', [], 31),
      ints('p3', [0, 0, 2, 1, 1, 2, 0, 0], [4, 2]),
    ],
  },
  {
    name: 'FusedBatchNormV3 after a conv and FusedBatchNorm on the input',
    input: [4, 4, 3],
    output: 'bn2',
    nodes: [
      n('bn1', 'FusedBatchNorm', ['x', 'g1', 'b1', 'm1', 'v1'], { epsilon: A.f(0.001), is_training: A.b(false), data_format: NHWC }),
      conv('c', 'bn1', 'k'),
      n('bn2', 'FusedBatchNormV3', ['c', 'g2', 'b2', 'm2', 'v2'], { epsilon: A.f(0.01), is_training: A.b(false), data_format: NHWC }),
    ],
    weights: [
      w('g1', [3], 32),
      w('b1', [3], 33),
      w('m1', [3], 34),
      positive('v1', [3], 35),
      w('k', [3, 3, 3, 4], 36),
      w('g2', [4], 37),
      w('b2', [4], 38),
      w('m2', [4], 39),
      positive('v2', [4], 40),
    ],
  },
  ...(
    [
      [false, false],
      [false, true],
      [true, false],
    ] as const
  ).flatMap(([align, half]): GraphCase[] => [
    {
      name: `ResizeBilinear align_corners=${align} half_pixel_centers=${half}, 3×4 → 7×10`,
      input: [3, 4, 2],
      output: 'rb',
      nodes: [conv('c', 'x', 'k'), n('rb', 'ResizeBilinear', ['c', 'size'], { align_corners: A.b(align), half_pixel_centers: A.b(half) })],
      weights: [w('k', [1, 1, 2, 2], 41), ints('size', [7, 10])],
    },
    {
      name: `ResizeNearestNeighbor align_corners=${align} half_pixel_centers=${half}, 3×4 → 7×8`,
      input: [3, 4, 2],
      output: 'rn',
      nodes: [conv('c', 'x', 'k'), n('rn', 'ResizeNearestNeighbor', ['c', 'size'], { align_corners: A.b(align), half_pixel_centers: A.b(half) })],
      weights: [w('k', [1, 1, 2, 2], 42), ints('size', [7, 8])],
    },
  ]),
  {
    name: 'ResizeBilinear by an integer factor',
    input: [3, 4, 2],
    output: 'rb',
    nodes: [n('rb', 'ResizeBilinear', ['x', 'size'], { align_corners: A.b(false), half_pixel_centers: A.b(false) })],
    weights: [ints('size', [6, 12])],
  },
  {
    name: 'Identity and Cast',
    input: [5],
    output: 'out',
    nodes: [
      n('id', 'Identity', ['x']),
      n('cast', 'Cast', ['three'], { SrcT: A.type('DT_INT32'), DstT: A.type('DT_FLOAT') }),
      n('m', 'Mul', ['id', 'v']),
      n('out', 'AddV2', ['m', 'cast']),
    ],
    weights: [w('v', [5], 60), { name: 'three', shape: [], dtype: 'int32', data: [3] }],
  },
];

for (const c of CASES) test(`tfjs graph: ${c.name}`, () => check(c));

test('tfjs graph: a classifier ending in Softmax → Identity outputs its logits (signature under userDefinedMetadata)', async () => {
  await tfReady();
  const nodes = [
    placeholder('input_1', [-1, 6, 6, 1]),
    conv('model/conv/Relu', 'input_1', 'model/conv/kernel', { fused: ['BiasAdd', 'Relu'], args: ['model/conv/bias'] }),
    pool('model/pool/MaxPool', 'MaxPool', 'model/conv/Relu', [1, 2, 2, 1], [1, 2, 2, 1], 'VALID'),
    n('model/flatten/Reshape', 'Reshape', ['model/pool/MaxPool', 'model/flatten/Const']),
    n('model/dense/BiasAdd', '_FusedMatMul', ['model/flatten/Reshape', 'model/dense/kernel', 'model/dense/bias'], {
      transpose_a: A.b(false),
      transpose_b: A.b(false),
      fused_ops: A.strs(['BiasAdd']),
      num_args: A.i(1),
    }),
    n('model/dense/Softmax', 'Softmax', ['model/dense/BiasAdd']),
    n('Identity', 'Identity', ['model/dense/Softmax']),
  ];
  const weights = [
    w('model/conv/kernel', [3, 3, 1, 4], 50),
    w('model/conv/bias', [4], 51),
    ints('model/flatten/Const', [-1, 16]),
    w('model/dense/kernel', [16, 5], 52),
    w('model/dense/bias', [5], 53),
  ];
  const signature = { inputs: { input_1: { name: 'input_1:0', dtype: 'DT_FLOAT' } }, outputs: { dense: { name: 'Identity:0' } } };
  const json = writeGraphModel(tempDir('graph-classifier'), nodes, weights, { userDefinedMetadata: { signature } });
  const loaded = loadModel(json);
  const g = loaded.model.graph!;
  assert.equal(g.output![0].name, 'model/dense/BiasAdd');
  assert.ok(!g.node!.some((x) => x.opType === 'Softmax'));
  assert.equal(loaded.model.metadataProps!.find((p) => p.key === 'rlab.output')!.value, 'logits (pre-softmax of node model/dense/Softmax)');
  for (const name of ['model/conv/Relu', 'model/pool/MaxPool', 'model/flatten/Reshape', 'model/dense/BiasAdd'])
    assert.ok(
      g.node!.some((x) => x.name === name),
      name,
    );
  const x = randomInput([3, 6, 6, 1], 54);
  const model = await tf.loadGraphModel(tf.io.fromMemory(artifactsFromDir(json)));
  const logits = model.execute({ input_1: tf.tensor(x, [3, 6, 6, 1]) }, 'model/dense/BiasAdd') as tf.Tensor;
  const got = await runConverted(json, x, [3, 6, 6, 1]);
  assertClose(got.out, logits.dataSync(), 1e-4, 'logits');
});

test('tfjs graph: Const values written inline in the graph (not in the weights) are read too', async () => {
  const nodes = [
    placeholder('x', [-1, 5]),
    {
      name: 'inline',
      op: 'Const',
      attr: { dtype: A.type(), value: { tensor: { dtype: 'DT_FLOAT', tensorShape: { dim: [{ size: '5' }] }, floatVal: [1, 2, 3, 4, 5] } } },
    },
    {
      name: 'packed',
      op: 'Const',
      attr: {
        dtype: A.type(),
        value: {
          tensor: {
            dtype: 'DT_FLOAT',
            tensorShape: { dim: [{ size: '5' }] },
            tensorContent: Buffer.from(new Float32Array([0.5, 0, -1, 2, 0.25]).buffer).toString('base64'),
          },
        },
      },
    },
    { name: 'scalar', op: 'Const', attr: { dtype: A.type('DT_INT32'), value: { tensor: { dtype: 'DT_INT32', tensorShape: {}, intVal: [3] } } } },
    n('cast', 'Cast', ['scalar'], { DstT: A.type('DT_FLOAT') }),
    n('m', 'Mul', ['x', 'inline']),
    n('a', 'AddV2', ['m', 'packed']),
    n('out', 'AddV2', ['a', 'cast']),
  ];
  const json = writeGraphModel(tempDir('graph-inline'), nodes as GraphNodeJson[], []);
  const x = randomInput([2, 5], 61);
  const got = await runConverted(json, x, [2, 5]);
  const k = [1, 2, 3, 4, 5],
    p = [0.5, 0, -1, 2, 0.25];
  assertClose(
    got.out,
    Array.from(x, (v, i) => Math.fround(Math.fround(v * k[i % 5]) + p[i % 5]) + 3),
    1e-6,
    'x·inline + packed + 3',
  );
});

test('tfjs graph: unsupported ops (control flow, unknown, NCHW, SYMMETRIC) are listed in one error', async () => {
  const nodes = [
    placeholder('x', [-1, 4, 4, 2]),
    n('enter', 'Enter', ['x'], { frame_name: A.s('loop') }),
    n('mystery', 'FancyOp', ['enter']),
    conv('nchw', 'mystery', 'k', { extra: { data_format: A.s('NCHW') } }),
    n('sym', 'MirrorPad', ['nchw', 'p'], { mode: A.s('SYMMETRIC') }),
    n('sqrt', 'Sqrt', ['sym']),
  ];
  const json = writeGraphModel(tempDir('graph-unsupported'), nodes, [w('k', [1, 1, 2, 2], 1), ints('p', [0, 0, 1, 1, 1, 1, 0, 0], [4, 2])]);
  assert.throws(
    () => loadModel(json),
    (e: Error) => {
      assert.equal(e.name, 'UserError');
      assert.match(e.message, /op Enter \(control flow\) is not supported: 'enter'/);
      assert.match(e.message, /op FancyOp is not supported: 'mystery'/);
      assert.match(e.message, /node 'nchw' \(Conv2D\): data_format NCHW/);
      assert.match(e.message, /node 'sym' \(MirrorPad\): mode SYMMETRIC/);
      assert.match(e.message, /tf2onnx/);
      return true;
    },
  );
});
