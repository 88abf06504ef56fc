// Type declarations for chdproxy collect.js 1.0.0 (global `ChdCollect`).

export type FieldName = 'number' | 'expiry' | 'cvv' | 'holder';

/** Whitelisted CSS properties (camelCase or kebab-case) with plain values. */
export interface FieldStyle {
  base?: Record<string, string | number>;
  invalid?: Record<string, string | number>;
}

export interface FieldState {
  valid: boolean;
  empty: boolean;
  /** A stable error code (e.g. 'invalid_card_checksum'), never a value. */
  error?: string;
}

export interface ChangeEvent {
  complete: boolean;
  empty: boolean;
  brand: string | null;
  fields: Partial<Record<FieldName, FieldState>>;
}

export interface ErrorEvent {
  code: string;
  message: string;
}

export interface TokenResult {
  token: string;
  card: { brand: string; bin: string; last4: string; exp_month: string; exp_year: string };
}

export interface CvvResult {
  token: string;
  cvv: 'attached';
}

/** Rejections carry a stable code: 'invalid_input', 'origin_not_allowed', 'frame_unavailable',
 * 'busy', 'timeout', 'destroyed', 'network_error', or the collect API's error code. */
export interface CollectError extends Error {
  code: string;
  /** With 'invalid_input': the state of each field. */
  fields?: Partial<Record<FieldName, FieldState>>;
}

interface Events {
  ready: Record<string, never>;
  change: ChangeEvent;
  brand: { brand: string | null };
  error: ErrorEvent;
  focus: { field: FieldName };
  blur: { field: FieldName };
}

export interface FieldsElement {
  on<K extends keyof Events>(type: K, fn: (ev: Events[K]) => void): this;
  off<K extends keyof Events>(type: K, fn: (ev: Events[K]) => void): this;
  focus(field?: FieldName): void;
  update(options: { style?: FieldStyle }): void;
  destroy(): void;
}

export interface CardElement extends FieldsElement {
  /** Resolves with the token and its metadata; never sends anything while a field is invalid. */
  tokenize(): Promise<TokenResult>;
}

export interface CvvElement extends FieldsElement {
  /** Attaches the CVV to the session's card token (single use). */
  submit(): Promise<CvvResult>;
}

export interface Collect {
  readonly collectOrigin: string;
  mountCard(target: string | Element, options?: { style?: FieldStyle; fields?: FieldName[] }): CardElement;
  mountCvv(target: string | Element, options: { session: string; style?: FieldStyle }): CvvElement;
}

export interface ChdCollectStatic {
  readonly version: string;
  create(options: { key: string; collectOrigin?: string }): Collect;
}

declare global {
  const ChdCollect: ChdCollectStatic;
}
