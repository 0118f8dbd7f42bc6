// Client messages on the WebSocket endpoint (GET /v1/ws). The request inside
// response.create is validated afterwards against the endpoint's own body schema.
import { Type, type Static } from '@sinclair/typebox';
import { StringEnum } from './sampling.ts';

export const WS_ENDPOINTS = ['chat.completions', 'completions'] as const;
export type WsEndpoint = (typeof WS_ENDPOINTS)[number];

export const WsClientMessage = Type.Object({
  type: StringEnum(['response.create', 'response.cancel'] as const),
  /** The client's id for the request; every server event about it carries it. */
  id: Type.String({ minLength: 1, maxLength: 200 }),
  endpoint: Type.Optional(StringEnum(WS_ENDPOINTS)),
  request: Type.Optional(Type.Object({})),
});
export type WsClientMessage = Static<typeof WsClientMessage>;
