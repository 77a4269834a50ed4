// @ts-check
// Server-sent events from text as it arrives: the text is cut into events at
// blank lines and each event into its name and data. A live snapshot of a
// town's registry is one event of tens of megabytes arriving in thousands of
// chunks, so the text of an unfinished event is kept as its chunks and each
// chunk is searched once: searching the whole text again on every chunk made
// reading such a snapshot quadratic. No DOM, so test/sse.test.js checks it.

/**
 * A reader of an event stream's text: `push` each chunk as it comes; `onEvent(name,
 * data)` is called for every complete event with data (comments and data-less events
 * are skipped; the name defaults to `message`).
 * @param {(name: string, data: string) => void} onEvent
 */
export function eventReader(onEvent) {
  /** @type {string[]} the current event's text so far, none of it holding its end */
  let pending = [];
  let endsWithNewline = false;
  let carriageReturn = false;
  /** @param {string} block */
  const emit = (block) => {
    let name = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
      if (field === 'event') name = value;
      else if (field === 'data') data.push(value);
    }
    if (data.length) onEvent(name, data.join('\n'));
  };
  return {
    /** @param {string} chunk */
    push(chunk) {
      // Line ends are \n, \r\n or \r; a \r\n may be cut between two chunks.
      let text = chunk;
      if (carriageReturn && text.startsWith('\n')) text = text.slice(1);
      carriageReturn = text.endsWith('\r');
      text = text.replace(/\r\n?/g, '\n');
      if (!text) return;
      let start = 0;
      if (endsWithNewline && text.startsWith('\n')) {
        emit(pending.join('').slice(0, -1));
        pending = [];
        start = 1;
      }
      let end;
      while ((end = text.indexOf('\n\n', start)) >= 0) {
        pending.push(text.slice(start, end));
        emit(pending.join(''));
        pending = [];
        start = end + 2;
      }
      const rest = text.slice(start);
      if (rest) pending.push(rest);
      endsWithNewline = rest.endsWith('\n');
    },
  };
}
