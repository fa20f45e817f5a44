/**
 * @module client
 * Sender side of gateway ingest [E2E-2] [VER-1]: a UE, a field concentrator or a load generator
 * streams signed records over one bidirectional `Ingest` call, in frames, with a bounded window
 * of frames awaiting their acks, and gets one ack per record. Records travel as the exact bytes
 * the UE SDK produced (no re-encoding). A record is safe to forget once its ack says STORED or
 * DUPLICATE; on a stream failure every unacknowledged record must be sent again (the gateway is
 * idempotent).
 *
 * @example
 * const gw = new IngestClient({ address: '127.0.0.1:7443', channel: 'meters' });
 * const acks = await gw.send(await signer.signBatch(readings));
 * gw.close();
 */
import * as grpc from '@grpc/grpc-js';
import { SignedRecord } from '../../proto/gen/divs/v1/common.ts';
import { IngestResponse, IngestServiceService, type RecordAck } from '../../proto/gen/divs/v1/gateway.ts';
import { DivsError, fail } from '../../protocol/src/errors.ts';
import { fromServiceError } from '../../platform/src/grpc.ts';
import { encodeIngestRequest } from './ingest.ts';

export interface IngestClientOptions {
  /** Gateway address, `host:port`. */
  address: string;
  channel?: string;
  /** Ingest bearer token, when the gateway requires one. */
  token?: string;
  credentials?: grpc.ChannelCredentials;
  /** Records per frame; default 256. */
  frameSize?: number;
  /** Frames awaiting acks; default 16. */
  window?: number;
}

interface Frame {
  id: number;
  count: number;
  resolve: (acks: RecordAck[]) => void;
  reject: (e: DivsError) => void;
}

const PATH = IngestServiceService.ingest.path;

export class IngestClient {
  readonly #o: Required<Omit<IngestClientOptions, 'token' | 'credentials'>> & Pick<IngestClientOptions, 'token'>;
  readonly #client: grpc.Client;
  #call: grpc.ClientDuplexStream<Uint8Array, IngestResponse> | null = null;
  readonly #inFlight: Frame[] = [];
  #nextFrame = 1;
  #waiters: (() => void)[] = [];

  constructor(o: IngestClientOptions) {
    this.#o = { address: o.address, channel: o.channel ?? '', token: o.token, frameSize: o.frameSize ?? 256, window: o.window ?? 16 };
    if (!Number.isInteger(this.#o.frameSize) || this.#o.frameSize < 1) fail('CONFIG_INVALID', 'frameSize: a positive integer');
    if (!Number.isInteger(this.#o.window) || this.#o.window < 1) fail('CONFIG_INVALID', 'window: a positive integer');
    this.#client = new grpc.Client(o.address.replace(/^grpc:\/\//, ''), o.credentials ?? grpc.credentials.createInsecure(), {
      'grpc.max_send_message_length': 64 * 1024 * 1024,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
    });
  }

  #open(): grpc.ClientDuplexStream<Uint8Array, IngestResponse> {
    if (this.#call) return this.#call;
    const md = new grpc.Metadata();
    if (this.#o.token) md.set('authorization', `Bearer ${this.#o.token}`);
    const call = this.#client.makeBidiStreamRequest<Uint8Array, IngestResponse>(
      PATH,
      (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
      (b: Buffer) => IngestResponse.decode(b),
      md,
    );
    call.on('data', (res: IngestResponse) => {
      const f = this.#inFlight.shift();
      if (!f) return;
      if (res.frameId !== f.id || res.acks.length !== f.count) {
        f.reject(new DivsError('MALFORMED_MESSAGE', `gateway answered frame ${res.frameId} with ${res.acks.length} acks, expected frame ${f.id} with ${f.count}`));
      } else f.resolve(res.acks);
      this.#wake();
    });
    const fail = (e: DivsError) => {
      if (this.#call === call) this.#call = null;
      for (const f of this.#inFlight.splice(0)) f.reject(e);
      this.#wake();
    };
    call.on('error', (e: unknown) => fail(fromServiceError(e)));
    call.on('end', () => fail(new DivsError('UNAVAILABLE', 'ingest stream ended before every frame was acknowledged')));
    this.#call = call;
    return call;
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** Sends one frame (at most frameSize records) and resolves with its acks. */
  async #frame(records: readonly Uint8Array[]): Promise<RecordAck[]> {
    while (this.#inFlight.length >= this.#o.window) await new Promise<void>((r) => this.#waiters.push(r));
    const call = this.#open();
    const id = this.#nextFrame++;
    const bytes = encodeIngestRequest({ channel: this.#o.channel, frameId: id, records });
    return new Promise<RecordAck[]>((resolve, reject) => {
      this.#inFlight.push({ id, count: records.length, resolve, reject });
      call.write(bytes);
    });
  }

  /**
   * Sends records (SignedRecord messages or their exact encodings) and resolves with one ack per
   * record, in order. Rejects (UNAVAILABLE, …) when the stream fails before every ack arrived.
   */
  async send(records: readonly (SignedRecord | Uint8Array)[]): Promise<RecordAck[]> {
    const raw = records.map((r) => (r instanceof Uint8Array ? r : SignedRecord.encode(r).finish()));
    const frames: Promise<RecordAck[]>[] = [];
    for (let i = 0; i < raw.length; i += this.#o.frameSize) frames.push(this.#frame(raw.slice(i, i + this.#o.frameSize)));
    return (await Promise.all(frames)).flat();
  }

  /** Ends the stream (after pending acks) and the channel. */
  close(): void {
    this.#call?.end();
    this.#call = null;
    this.#client.close();
  }
}
