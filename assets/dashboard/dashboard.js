// The built-in dashboard: reads the JSON API (API.md) with the credential the person
// gave, kept in sessionStorage and sent as `Authorization: Bearer`, never a cookie.
// Plain ES2020, no build step; charts by uPlot (vendor/, MIT).
'use strict'

const STORAGE_KEY = 'volcanion.dashboard.credential'
const LATEST_LIMIT = 20
const TOP_LIMIT = 10
const RANGES = { '1h': 3600e3, '24h': 86400e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3 }
const NETWORK_RETRY_SECONDS = 10
// Whole-number steps for the count axis: 1, 2, 5, 10, 20, 50, …
const COUNT_STEPS = Array.from({ length: 30 }, (_, index) => [1, 2, 5][index % 3] * 10 ** Math.floor(index / 3))

const $ = (id) => document.getElementById(id)
const numberFormat = new Intl.NumberFormat('en')

const session = {
  credential: null,
  admin: false,
  // Subsystem id → name (known to the admin token only; a read key sees ids).
  subsystemNames: new Map(),
  knownSubsystems: new Set(),
  knownTypes: new Set(),
  loads: 0,
  generation: 0,
  refreshTimer: null,
  retryTimer: null,
  chart: null,
}

// An answer of the API that is not a success, with what a person needs to know.
class ApiFailure extends Error {
  constructor(status, detail, retryAfter) {
    super(detail || `HTTP ${status}`)
    this.status = status
    this.detail = detail
    this.retryAfter = retryAfter
  }
}

async function api(path, params = {}) {
  const query = new URLSearchParams()
  for (const [name, value] of Object.entries(params)) {
    // An array is a repeated parameter (`where=`).
    for (const one of Array.isArray(value) ? value : [value]) {
      if (one !== undefined && one !== null && one !== '') query.append(name, one)
    }
  }
  const url = query.toString() ? `${path}?${query}` : path
  const response = await fetch(url, {
    headers: { Authorization: `Bearer ${session.credential}`, Accept: 'application/json' },
    credentials: 'omit',
    cache: 'no-store',
  })
  if (response.ok) return response.json()
  let detail = ''
  try {
    detail = (await response.json()).detail || ''
  } catch (_) {
    // Not problem+json (a proxy's page): the status says enough.
  }
  const retryAfter = Number.parseInt(response.headers.get('retry-after') || '', 10)
  throw new ApiFailure(response.status, detail, Number.isFinite(retryAfter) ? retryAfter : null)
}

// ---- messages -------------------------------------------------------------------------

function showMessage(text, kind = 'error') {
  const box = $('message')
  box.textContent = text
  box.className = `message ${kind}`
  box.hidden = false
  document.body.dataset.message = kind
}

function clearMessage() {
  $('message').hidden = true
  $('message').textContent = ''
  delete document.body.dataset.message
}

function setStatus(text) {
  $('status').textContent = text
}

// What to tell a person about a failed load, and whether to try again by itself.
function explain(error) {
  if (!(error instanceof ApiFailure)) {
    return { text: `Cannot reach the service (${error.message}). Retrying in ${NETWORK_RETRY_SECONDS} s.`, retryIn: NETWORK_RETRY_SECONDS }
  }
  switch (error.status) {
    case 401:
      return { text: 'This key is not valid or has expired. Sign in with another one.', signOut: true }
    case 403:
      // Refused before anything was shown (an ingest-only key): back to signing in.
      return { text: `This key may not read this data: ${error.detail || 'it needs the read scope'}.`, signOut: session.loads === 0 }
    case 404:
      return { text: `Not found: ${error.detail || 'the partner or subsystem no longer exists'}.` }
    case 429: {
      const seconds = error.retryAfter || 5
      return { text: `Rate limited, retrying in ${seconds} s.`, retryIn: seconds, kind: 'warning' }
    }
    case 503: {
      const seconds = error.retryAfter || NETWORK_RETRY_SECONDS
      return { text: `The service is busy or starting (503), retrying in ${seconds} s.`, retryIn: seconds, kind: 'warning' }
    }
    default:
      if (error.status >= 500) {
        return { text: `The service failed (${error.status}), retrying in ${NETWORK_RETRY_SECONDS} s.`, retryIn: NETWORK_RETRY_SECONDS }
      }
      return { text: `The service refused this request (${error.status}): ${error.detail}` }
  }
}

function handleFailure(error) {
  const advice = explain(error)
  document.body.dataset.state = 'error'
  showMessage(advice.text, advice.kind || 'error')
  setStatus('')
  if (advice.signOut) {
    signOut({ keepMessage: true })
    return
  }
  if (advice.retryIn) {
    clearTimeout(session.retryTimer)
    session.retryTimer = setTimeout(refresh, advice.retryIn * 1000)
  }
}

// ---- time -----------------------------------------------------------------------------

function browserTimeZone() {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'
}

function fillTimeZones() {
  const select = $('tz')
  const own = browserTimeZone()
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : []
  const all = Array.from(new Set(['UTC', own, ...zones]))
  for (const zone of all) select.add(new Option(zone, zone, zone === own, zone === own))
}

// Minutes `timeZone` is ahead of UTC at `instant` (ms).
function offsetMinutes(instant, timeZone) {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(new Date(instant))
  const get = (type) => Number(parts.find((part) => part.type === type).value)
  const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'))
  return Math.round((asUtc - Math.floor(instant / 1000) * 1000) / 60000)
}

// A `datetime-local` value read as a wall-clock time in `timeZone` → ms since the epoch.
function zonedToInstant(local, timeZone) {
  const [date, time = '00:00'] = local.split('T')
  const [year, month, day] = date.split('-').map(Number)
  const [hour, minute] = time.split(':').map(Number)
  const wall = Date.UTC(year, month - 1, day, hour, minute)
  const first = wall - offsetMinutes(wall, timeZone) * 60000
  return wall - offsetMinutes(first, timeZone) * 60000
}

function formatTime(iso, timeZone) {
  return new Intl.DateTimeFormat('en-GB', {
    timeZone, year: 'numeric', month: 'short', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).format(new Date(iso))
}

function selectedRange() {
  const preset = $('range').value
  if (preset === 'custom') {
    const timeZone = $('tz').value
    if (!$('from').value || !$('to').value) throw new ApiFailure(400, 'choose both ends of the custom range')
    return { from: new Date(zonedToInstant($('from').value, timeZone)), to: new Date(zonedToInstant($('to').value, timeZone)) }
  }
  const to = new Date()
  return { from: new Date(to.getTime() - RANGES[preset]), to }
}

// ---- loading --------------------------------------------------------------------------

function filters() {
  const { from, to } = selectedRange()
  return {
    partnerId: session.admin ? $('partner').value : undefined,
    subsystemId: $('subsystem').value,
    eventType: $('event-type').value,
    from: from.toISOString(),
    to: to.toISOString(),
  }
}

async function refresh(event) {
  if (event) event.preventDefault()
  if (!session.credential) return
  clearTimeout(session.retryTimer)
  const generation = ++session.generation
  document.body.dataset.state = 'loading'
  setStatus('Loading…')
  try {
    const scope = filters()
    const common = { partnerId: scope.partnerId, subsystemId: scope.subsystemId, from: scope.from, to: scope.to }
    // Every report shares the filters and the bot toggle; the listing is no report.
    const report = { ...common, ...narrowing() }
    const [summary, series, latest, panels] = await Promise.all([
      api('/api/v1/reports/summary', report),
      api('/api/v1/reports/timeseries', { ...report, eventType: scope.eventType, interval: $('interval').value, tz: $('tz').value }),
      api('/api/v1/events', { ...common, eventType: scope.eventType, limit: LATEST_LIMIT }),
      loadPanels({ ...report, eventType: scope.eventType }),
    ])
    if (generation !== session.generation) return
    const failure = pageFailure(panels)
    if (failure) throw failure
    render(scope, summary, series, latest, panels)
  } catch (error) {
    if (generation === session.generation) handleFailure(error)
  }
}

function render(scope, summary, series, latest, panels) {
  clearMessage()
  renderTotals(summary, scope.eventType)
  renderChart(series)
  renderTops(summary)
  renderPanels(panels)
  renderLatest(latest.items)
  $('empty').hidden = summary.totalEvents > 0
  const timeZone = $('tz').value
  $('board').dataset.from = scope.from
  $('board').dataset.to = scope.to
  $('board').dataset.interval = series.interval
  $('board').dataset.tz = series.tz
  setStatus(`${formatTime(scope.from, timeZone)} – ${formatTime(scope.to, timeZone)} (${timeZone}). ` +
    `Data as of ${formatTime(summary.dataAsOf, timeZone)}.`)
  session.loads += 1
  document.body.dataset.loads = String(session.loads)
  document.body.dataset.state = 'ready'
  refreshPeople()
}

// ---- rendering ------------------------------------------------------------------------

function share(part, total) {
  return total === 0 ? '–' : `${(100 * part / total).toFixed(1)} %`
}

// Whole seconds as `42 s`, `3 min 05 s` or `1 h 02 min`.
function duration(seconds) {
  const whole = Math.round(seconds)
  if (whole < 60) return `${whole} s`
  const minutes = Math.floor(whole / 60)
  if (minutes < 60) return `${minutes} min ${String(whole % 60).padStart(2, '0')} s`
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`
}

function renderTotals(summary, eventType) {
  const total = summary.totalEvents
  $('total-events').textContent = numberFormat.format(total)
  $('valid-share').textContent = share(summary.validEvents, total)
  $('valid-events').textContent = `${numberFormat.format(summary.validEvents)} events`
  $('invalid-share').textContent = share(summary.invalidEvents, total)
  $('invalid-events').textContent = `${numberFormat.format(summary.invalidEvents)} events`
  $('unique-users').textContent = numberFormat.format(summary.uniqueUsers)
  // Visits are null when a filter would have them counted from too many raw events.
  $('visits').textContent = summary.visits == null ? '–' : numberFormat.format(summary.visits)
  $('bounce-rate').textContent = summary.bounceRate == null ? '–' : `${(100 * summary.bounceRate).toFixed(1)} %`
  $('visit-duration').textContent = summary.visitDurationSeconds == null ? '–' : duration(summary.visitDurationSeconds)
  // The summary report has no event-type filter: say what the totals cover.
  $('totals-note').hidden = !eventType
  $('totals-note').textContent = eventType
    ? `Totals cover every event type (${numberFormat.format(summary.eventCounts[eventType] || 0)} of them are "${eventType}"); the chart, the panels and the latest events show "${eventType}" only.`
    : ''
  rememberOptions(summary)
}

function rememberOptions(summary) {
  for (const type of Object.keys(summary.eventCounts)) session.knownTypes.add(type)
  for (const id of Object.keys(summary.subsystemCounts)) session.knownSubsystems.add(id)
  syncOptions($('event-type'), session.knownTypes, (type) => type)
  syncPeopleOptions(session.knownTypes)
  syncOptions($('subsystem'), session.knownSubsystems, subsystemLabel)
}

// Adds options not yet in `select` (after its first "All" option), keeping the choice.
function syncOptions(select, values, label) {
  const present = new Set(Array.from(select.options, (option) => option.value))
  const missing = Array.from(values).filter((value) => !present.has(value)).sort()
  for (const value of missing) select.add(new Option(label(value), value))
}

function subsystemLabel(id) {
  // Ids are UUID v7, whose first digits are a timestamp: the last ones tell them apart.
  return session.subsystemNames.get(id) || `…${id.slice(-8)}`
}

// Each cell carries its column's name, which a phone-width screen shows beside it.
function renderRows(tbody, rows) {
  const names = Array.from(tbody.parentElement.tHead.rows[0].cells, (th) => th.textContent)
  tbody.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement('tr')
    cells.forEach((td, index) => {
      td.dataset.label = names[index] || ''
      tr.append(td)
    })
    return tr
  }))
}

function cell(content, className) {
  const td = document.createElement('td')
  if (className) td.className = className
  if (content instanceof Node) td.append(content)
  else td.textContent = content
  return td
}

function topRows(counts, label) {
  return Object.entries(counts)
    .sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]))
    .slice(0, TOP_LIMIT)
    .map(([key, count]) => {
      const name = cell(label(key))
      name.title = key
      return [name, cell(numberFormat.format(count), 'num')]
    })
}

function renderTops(summary) {
  const none = () => [[cell('None in this range'), cell('', 'num')]]
  const types = topRows(summary.eventCounts, (type) => type)
  const subsystems = topRows(summary.subsystemCounts, subsystemLabel)
  renderRows($('top-types').tBodies[0], types.length ? types : none())
  renderRows($('top-subsystems').tBodies[0], subsystems.length ? subsystems : none())
}

function renderLatest(events) {
  const timeZone = $('tz').value
  const rows = events.map((event) => {
    const time = document.createElement('time')
    time.dateTime = event.timestamp
    time.textContent = formatTime(event.timestamp, timeZone)
    const errors = document.createElement('ul')
    errors.className = 'errors'
    for (const message of event.validationErrors) {
      const item = document.createElement('li')
      item.textContent = message
      errors.append(item)
    }
    const row = [
      cell(time),
      cell(event.eventType),
      cell(subsystemLabel(event.subsystemId)),
      cell(event.userId || event.anonymousId || ''),
      cell(event.isValid ? 'Yes' : 'No', event.isValid ? 'valid-yes' : 'valid-no'),
      cell(event.validationErrors.length ? errors : ''),
    ]
    return row
  })
  const none = [[cell('No events in this range yet.')]]
  renderRows($('latest').tBodies[0], rows.length ? rows : none)
  $('latest').dataset.eventIds = events.map((event) => event.eventId).join(',')
}

function chartSize() {
  const width = Math.max(260, $('chart').clientWidth)
  return { width, height: width < 500 ? 220 : 300 }
}

function renderChart(series) {
  const xs = series.buckets.map((bucket) => Date.parse(bucket.start) / 1000)
  const counts = series.buckets.map((bucket) => bucket.count)
  const users = series.buckets.map((bucket) => bucket.uniqueUsers)
  $('chart-interval').textContent = series.interval
  const total = counts.reduce((sum, count) => sum + count, 0)
  $('chart-summary').textContent = `${numberFormat.format(total)} events in ${xs.length} ${series.interval} buckets.`
  if (session.chart) session.chart.destroy()
  const timeZone = series.tz
  // Half a bucket of room at each end, so the first and last bars are whole.
  const half = (series.interval === 'day' ? 86400 : 3600) / 2
  session.chart = new uPlot({
    ...chartSize(),
    tzDate: (seconds) => uPlot.tzDate(new Date(seconds * 1000), timeZone),
    scales: {
      x: { time: true, range: (_u, min, max) => [min - half, max + half] },
      y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
    },
    series: [
      {},
      { label: 'Events', stroke: '#0b5cad', fill: 'rgba(11, 92, 173, 0.25)', width: 1, paths: uPlot.paths.bars({ size: [0.7, 40] }) },
      { label: 'Unique users', stroke: '#d9480f', width: 2, points: { show: xs.length < 60 } },
    ],
    axes: [{}, { label: 'count', size: 50, incrs: COUNT_STEPS, values: (_u, ticks) => ticks.map((tick) => numberFormat.format(tick)) }],
  }, [xs, counts, users], $('chart'))
}

// ---- signing in -----------------------------------------------------------------------

// The credential from `#key=…` (then wiped from the address bar), else this tab's.
function initialCredential() {
  // Read by hand, not with URLSearchParams, which would turn a '+' into a space.
  const fragment = /^#key=([^&]+)/.exec(location.hash)
  if (fragment) {
    history.replaceState(null, '', location.pathname + location.search)
    return decodeURIComponent(fragment[1])
  }
  return sessionStorage.getItem(STORAGE_KEY)
}

async function signIn(credential) {
  session.credential = credential
  document.body.dataset.state = 'signing-in'
  setStatus('Signing in…')
  try {
    await discoverRole()
  } catch (error) {
    failedSignIn(credential, error)
    return
  }
  sessionStorage.setItem(STORAGE_KEY, credential)
  clearMessage()
  $('sign-in').hidden = true
  $('board').hidden = false
  $('sign-out').hidden = false
  $('who').hidden = false
  $('who').textContent = session.admin ? 'Signed in with the admin token' : 'Signed in with a read key'
  $('main').focus({ preventScroll: true })
  scheduleAutoRefresh()
  await refresh()
}

// Back to the form with the reason; an overloaded service is asked again by itself.
function failedSignIn(credential, error) {
  const advice = explain(error)
  signOut({ keepMessage: true })
  showMessage(advice.text, advice.kind || 'error')
  document.body.dataset.state = 'error'
  if (advice.retryIn) session.retryTimer = setTimeout(() => signIn(credential), advice.retryIn * 1000)
}

// The admin token may list partners; an API key gets 403 there and reads its own partner.
async function discoverRole() {
  try {
    const partners = await allPartners()
    session.admin = true
    await fillPartners(partners)
  } catch (error) {
    if (!(error instanceof ApiFailure) || error.status !== 403) throw error
    session.admin = false
    $('partner-field').hidden = true
  }
}

async function allPartners() {
  const items = []
  let cursor = null
  for (let page = 0; page < 20; page += 1) {
    const answer = await api('/api/v1/partners', { limit: 100, cursor })
    items.push(...answer.items)
    cursor = answer.nextCursor
    if (!cursor) break
  }
  return items
}

function fillPartners(partners) {
  if (partners.length === 0) throw new ApiFailure(404, 'there are no partners yet: create one with POST /api/v1/partners')
  const select = $('partner')
  select.replaceChildren(...partners.map((partner) => new Option(`${partner.name} (${partner.code})`, partner.id)))
  $('partner-field').hidden = false
  return loadSubsystemNames()
}

// The admin token can name the partner's subsystems; a read key shows their ids.
async function loadSubsystemNames() {
  session.subsystemNames.clear()
  session.knownSubsystems.clear()
  session.knownTypes.clear()
  $('subsystem').replaceChildren(new Option('All subsystems', ''))
  $('event-type').replaceChildren(new Option('All event types', ''))
  const answer = await api(`/api/v1/partners/${$('partner').value}/subsystems`)
  for (const subsystem of answer.items) session.subsystemNames.set(subsystem.id, subsystem.name || subsystem.code)
}

function signOut({ keepMessage = false } = {}) {
  sessionStorage.removeItem(STORAGE_KEY)
  session.credential = null
  session.generation += 1
  session.loads = 0
  clearInterval(session.refreshTimer)
  clearTimeout(session.retryTimer)
  if (!keepMessage) clearMessage()
  // The next key may be another partner's, whose values these filters are not.
  view.filters = []
  renderChips()
  $('board').hidden = true
  $('sign-out').hidden = true
  $('who').hidden = true
  $('sign-in').hidden = false
  $('credential').value = ''
  $('credential').focus()
  setStatus('')
  document.body.dataset.state = 'signed-out'
}

function scheduleAutoRefresh() {
  clearInterval(session.refreshTimer)
  const seconds = Number($('auto-refresh').value)
  if (seconds > 0) {
    session.refreshTimer = setInterval(() => {
      if (!document.hidden && $('range').value !== 'custom') refresh()
    }, seconds * 1000)
  }
}

function showCustomRange() {
  const custom = $('range').value === 'custom'
  $('custom-from-field').hidden = !custom
  $('custom-to-field').hidden = !custom
  if (custom && !$('from').value) {
    const hour = 3600e3
    const local = (ms) => new Date(ms - new Date(ms).getTimezoneOffset() * 60000).toISOString().slice(0, 16)
    $('from').value = local(Date.now() - 24 * hour)
    $('to').value = local(Date.now())
  }
}

function wire() {
  $('sign-in-form').addEventListener('submit', (event) => {
    event.preventDefault()
    const credential = $('credential').value.trim()
    if (credential) signIn(credential)
  })
  $('sign-out').addEventListener('click', () => signOut())
  $('controls').addEventListener('submit', refresh)
  $('range').addEventListener('change', () => {
    showCustomRange()
    // A day-long range reads best by hour, a month by day.
    $('interval').value = ['7d', '30d'].includes($('range').value) ? 'day' : 'hour'
    refresh()
  })
  for (const id of ['from', 'to', 'interval', 'tz', 'subsystem', 'event-type']) {
    $(id).addEventListener('change', () => refresh())
  }
  $('partner').addEventListener('change', async () => {
    // Another partner's values would filter out everything.
    view.filters = []
    renderChips()
    try {
      await loadSubsystemNames()
    } catch (error) {
      handleFailure(error)
      return
    }
    refresh()
  })
  $('include-bots').addEventListener('change', () => {
    view.includeBots = $('include-bots').checked
    refresh()
  })
  view.onChange = () => refresh()
  $('auto-refresh').addEventListener('change', scheduleAutoRefresh)
  window.addEventListener('resize', () => session.chart && session.chart.setSize(chartSize()))
}

function start() {
  fillTimeZones()
  buildPanels()
  buildPeople()
  renderChips()
  wire()
  const credential = initialCredential()
  if (credential) {
    signIn(credential)
  } else {
    document.body.dataset.state = 'signed-out'
    $('credential').focus()
  }
}

start()
