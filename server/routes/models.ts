// GET /v1/models and GET /v1/models/:model
import { Type, type Static } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { modelNotFound } from '../openai/errors.ts';
import { ModelDescriptionSchema } from '../model-description.ts';
import type { ServedModel } from '../served-model.ts';
import type { ServerContext } from './context.ts';

/** Where and how the model runs (moe-server's own field). */
const Execution = Type.Object({
  device: Type.String(),
  plan: Type.Union([Type.Literal('per-expert'), Type.Literal('fused')]),
  precision: Type.String(),
  notes: Type.Array(Type.String()),
  graph_calls_per_decode_step: Type.Object({ device: Type.Number(), cpu: Type.Number() }),
});

const ModelObject = Type.Composite([
  Type.Object({
    id: Type.String(),
    object: Type.Literal('model'),
    created: Type.Integer(),
    owned_by: Type.String(),
    max_model_len: Type.Integer(),
    execution: Execution,
  }),
  ModelDescriptionSchema,
]);

const ModelList = Type.Object({ object: Type.Literal('list'), data: Type.Array(ModelObject) });

const ModelParams = Type.Object({ model: Type.String() });

function modelObject(model: ServedModel): Static<typeof ModelObject> {
  return {
    id: model.id,
    object: 'model',
    created: model.created,
    owned_by: 'moe-server',
    max_model_len: model.maxModelLen,
    execution: {
      device: model.execution.device,
      plan: model.execution.plan,
      precision: model.execution.precision,
      notes: model.execution.notes,
      graph_calls_per_decode_step: model.execution.graphCallsPerDecodeStep,
    },
    ...model.description,
  };
}

export function modelRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/v1/models', { schema: { response: { 200: ModelList } } }, async () => {
    return { object: 'list', data: [modelObject(ctx.slot.get())] };
  });
  app.get<{ Params: Static<typeof ModelParams> }>(
    '/v1/models/:model',
    { schema: { params: ModelParams, response: { 200: ModelObject } } },
    async (request) => {
      const model = ctx.slot.get();
      if (request.params.model !== model.id) throw modelNotFound(request.params.model, model.id);
      return modelObject(model);
    },
  );
}
