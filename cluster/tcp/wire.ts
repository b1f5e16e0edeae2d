/**
 * The frames nodes, clients and the manager exchange over one TCP port per node. The first frame
 * on a connection says who is speaking (`hello`); a peer connection then carries protocol
 * messages, a client connection carries requests one way and replies the other, and an admin
 * connection asks for status. Frames are checked for shape only: message authenticity is the
 * protocol's job (HMAC via env.auth), as in the simulator.
 */
import type { ClientReply, ClientRequest, Message, NodeId } from '../protocol.ts';

export type HelloFrame =
  | { readonly t: 'hello'; readonly role: 'peer'; readonly node: NodeId }
  /** `clients`: every client id whose replies this connection should carry. */
  | { readonly t: 'hello'; readonly role: 'client'; readonly clients: readonly number[] }
  | { readonly t: 'hello'; readonly role: 'admin' };

export interface MessageFrame {
  readonly t: 'msg';
  readonly m: Message;
}
export interface RequestFrame {
  readonly t: 'req';
  readonly r: ClientRequest;
}
export interface ReplyFrame {
  readonly t: 'reply';
  readonly r: ClientReply;
}
export interface StatusRequestFrame {
  readonly t: 'status';
}

/** What a node says about itself; the manager's readiness check and the tests read it. */
export interface NodeStatus {
  readonly node: NodeId;
  readonly protocol: string;
  readonly pid: number;
  readonly port: number;
  /** Outbound peer links currently connected (n - 1 when the mesh is complete). */
  readonly connectedPeers: number;
  readonly executed: number;
  readonly stateDigest: string;
  readonly shadowDigest: string;
  readonly digestsMatch: boolean;
  readonly messagesSent: number;
  readonly messagesReceived: number;
  readonly messagesDropped: number;
  readonly framesRejected: number;
  readonly traceRecords: number;
  readonly traceDropped: number;
  /** Socket write calls so far (peer links and accepted connections): each is a syscall, so
   * frames coalesced per write is the transport's main cost lever. */
  readonly socketWrites: number;
}
export interface StatusFrame {
  readonly t: 'status_ok';
  readonly s: NodeStatus;
}

export type Frame = HelloFrame | MessageFrame | RequestFrame | ReplyFrame | StatusRequestFrame | StatusFrame;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v);

export function isMessage(v: unknown): v is Message {
  return isObject(v) && typeof v.type === 'string' && isInt(v.from);
}

export function isClientRequest(v: unknown): v is ClientRequest {
  if (!isObject(v) || !isInt(v.clientId) || !isInt(v.requestId) || !isObject(v.op)) return false;
  const op = v.op;
  if (typeof op.key !== 'string') return false;
  if (op.kind === 'read') return true;
  if (op.kind === 'write') return typeof op.value === 'string';
  if (op.kind === 'cas') return typeof op.value === 'string' && (op.expected === null || typeof op.expected === 'string');
  return false;
}

export function isClientReply(v: unknown): v is ClientReply {
  if (!isObject(v) || !isInt(v.clientId) || !isInt(v.requestId) || !isInt(v.replica) || !isInt(v.view)) return false;
  const result = v.result;
  return isObject(result) && typeof result.applied === 'boolean' && (result.value === null || typeof result.value === 'string');
}

/** Returns the frame if its shape is one we know, else null (the caller counts and drops it). */
export function parseFrame(v: unknown): Frame | null {
  if (!isObject(v)) return null;
  switch (v.t) {
    case 'msg':
      return isMessage(v.m) ? (v as unknown as MessageFrame) : null;
    case 'req':
      return isClientRequest(v.r) ? (v as unknown as RequestFrame) : null;
    case 'reply':
      return isClientReply(v.r) ? (v as unknown as ReplyFrame) : null;
    case 'status':
      return { t: 'status' };
    case 'status_ok':
      return isObject(v.s) && isInt(v.s.node) ? (v as unknown as StatusFrame) : null;
    case 'hello':
      if (v.role === 'peer' && isInt(v.node)) return v as unknown as HelloFrame;
      if (v.role === 'client' && Array.isArray(v.clients) && v.clients.every(isInt)) return v as unknown as HelloFrame;
      if (v.role === 'admin') return { t: 'hello', role: 'admin' };
      return null;
    default:
      return null;
  }
}
