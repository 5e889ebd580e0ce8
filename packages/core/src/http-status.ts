/**
 * HTTP status names and descriptions as the FRACTAL v1 envelope shows them
 * (`{"http_status": {"code", "description", "name"}}`, the wording of Python's http.HTTPStatus).
 */
const STATUS: Record<number, [name: string, description: string]> = {
  200: ['OK', 'Request fulfilled, document follows'],
  201: ['CREATED', 'Document created, URL follows'],
  202: ['ACCEPTED', 'Request accepted, processing continues off-line'],
  204: ['NO_CONTENT', 'Request fulfilled, nothing follows'],
  400: ['BAD_REQUEST', 'Bad request syntax or unsupported method'],
  401: ['UNAUTHORIZED', 'No permission -- see authorization schemes'],
  403: ['FORBIDDEN', 'Request forbidden -- authorization will not help'],
  404: ['NOT_FOUND', 'Nothing matches the given URI'],
  405: ['METHOD_NOT_ALLOWED', 'Specified method is invalid for this resource'],
  409: ['CONFLICT', 'Request conflict'],
  413: ['REQUEST_ENTITY_TOO_LARGE', 'Entity is too large'],
  415: ['UNSUPPORTED_MEDIA_TYPE', 'Entity body in unsupported format'],
  429: ['TOO_MANY_REQUESTS', 'The user has sent too many requests in a given amount of time ("rate limiting")'],
  499: ['CLIENT_CLOSED_REQUEST', 'The client closed the connection before the answer'],
  500: ['INTERNAL_SERVER_ERROR', 'Server got itself in trouble'],
  501: ['NOT_IMPLEMENTED', 'Server does not support this operation'],
  502: ['BAD_GATEWAY', 'Invalid responses from another server/proxy'],
  503: ['SERVICE_UNAVAILABLE', 'The server cannot process the request due to a high load'],
  504: ['GATEWAY_TIMEOUT', 'The gateway server did not receive a timely response'],
  507: ['INSUFFICIENT_STORAGE', 'Insufficient storage'],
};

export interface HttpStatusBody {
  code: number;
  description: string;
  name: string;
}

export function httpStatusBody(code: number): HttpStatusBody {
  const [name, description] = STATUS[code] ?? ['UNKNOWN', 'Unknown status'];
  return { code, description, name };
}
