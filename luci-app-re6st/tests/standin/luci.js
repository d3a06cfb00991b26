// A STAND-IN for LuCI's client-side runtime, written here for the tests: not
// LuCI. It gives the views what they use of LuCI's API (L, E, _, the
// 'require' loader, view, rpc, poll, ui, uci, fs, form and
// tools.widgets) with the same calling conventions, and talks to the
// stand-in server (server.py) with rpcd's JSON-RPC shape, so that the
// views run unmodified in a real browser against the real node.
'use strict';

(function() {
	String.prototype.format = function() {
		const args = arguments;
		let i = 0;
		return this.replace(/%([sdf%])/g, (m, c) => {
			if (c === '%') return '%';
			const v = args[i++];
			if (c === 'd') return String(Math.trunc(+v));
			if (c === 'f') return String(+v);
			return String(v);
		});
	};

	window._ = (s) => s;

	function E(tag, attrs, children) {
		if (Array.isArray(attrs) || typeof attrs === 'string' || attrs instanceof Node) {
			children = attrs;
			attrs = {};
		}
		const el = document.createElement(tag);
		for (const k in (attrs || {})) {
			const v = attrs[k];
			if (typeof v === 'function') el.addEventListener(k, v);
			else if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v);
		}
		const add = (c) => {
			if (c === null || c === undefined || c === '') return;
			if (Array.isArray(c)) c.forEach(add);
			else el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
		};
		add(children);
		return el;
	}
	window.E = E;

	// JSON-RPC as LuCI's rpc.js sends it to /ubus: call [session, object,
	// method, args] -> result [status, data].
	let rpcId = 1;
	function ubus(object, method, args) {
		return fetch('/ubus', {
			method: 'POST',
			headers: { 'Content-Type': 'application/json' },
			body: JSON.stringify({ jsonrpc: '2.0', id: rpcId++, method: 'call',
				params: [ '00000000000000000000000000000000', object, method, args || {} ] })
		}).then((r) => r.json()).then((r) => {
			if (r.error) throw new Error(r.error.message);
			return r.result;
		});
	}

	// As LuCI's rpc.js: a non-zero status resolves to that number (rejects
	// with `reject: true`); `expect` picks a key, and a value of another
	// type than the expected default gives the default.
	function reply(d, result) {
		if (d.reject && result[0] !== 0) throw new Error('ubus status ' + result[0]);
		let ret = result.length > 1 ? result[1] : result[0];
		if (d.expect) {
			const key = Object.keys(d.expect)[0];
			if (ret !== null && ret !== undefined && key !== '') ret = ret[key];
			const type = Object.prototype.toString;
			if (ret === null || ret === undefined || type.call(ret) !== type.call(d.expect[key]))
				ret = d.expect[key];
		}
		return ret;
	}

	const rpc = {
		declare: function(d) {
			return function() {
				const args = {};
				(d.params || []).forEach((p, i) => { args[p] = arguments[i]; });
				return ubus(d.object, d.method, args).then((result) => reply(d, result));
			};
		}
	};

	const poll = {
		add: function(fn, interval) { setInterval(fn, (interval || 5) * 1000); }
	};

	const ui = {
		addNotification: function(title, content, cls) {
			const box = document.getElementById('notifications');
			box.appendChild(E('div', { 'class': 'alert-message ' + (cls || '') },
				[ title ? E('h4', {}, [ title ]) : '', content ]));
		},
		createHandlerFn: function(ctx, fn) {
			return function(ev) { return fn.call(ctx, ev); };
		}
	};

	// UCI through rpcd's uci object: get (whole config), set, commit.
	const uciState = {};
	const uci = {
		load: function(conf) {
			return ubus('uci', 'get', { config: conf }).then((r) => {
				if (r[0] !== 0) throw new Error('ubus status ' + r[0]);
				uciState[conf] = r[1].values || {};
			});
		},
		sections: function(conf, type) {
			return Object.values(uciState[conf] || {}).filter((s) => !type || s['.type'] === type);
		},
		get: function(conf, sid, opt) {
			const s = (uciState[conf] || {})[sid];
			return opt === undefined ? s : (s ? s[opt] : undefined);
		},
		set: function(conf, sid, opt, value) {
			const s = uciState[conf][sid];
			if (value === null || value === undefined || value === '' ||
				(Array.isArray(value) && !value.length)) delete s[opt];
			else s[opt] = value;
		},
		save: function(conf) {
			const s = Object.values(uciState[conf])[0];
			const values = {};
			for (const k in s) if (k.charAt(0) !== '.') values[k] = s[k];
			return ubus('uci', 'set', { config: conf, section: s['.name'], values: values })
				.then(() => ubus('uci', 'commit', { config: conf }));
		}
	};

	const fs = {
		exec_direct: function(cmd, args) {
			return ubus('file', 'exec', { command: cmd, params: args }).then((r) => {
				if (r[0] !== 0) throw new Error('ubus status ' + r[0]);
				return r[1].stdout || '';
			});
		}
	};

	// form: Map > TypedSection > options, rendered as plain labelled rows.
	class AbstractValue {
		constructor(section, name, title, help) {
			Object.assign(this, { section, name, title, help });
			this.values = [];
		}
		value(v) { this.values.push(v); }
		current() {
			const v = uci.get(this.section.map.config, this.section.sid, this.name);
			return v === undefined ? this.default : v;
		}
		row(input) {
			return E('div', { 'class': 'cbi-value', 'data-name': this.name }, [
				E('label', { 'class': 'cbi-value-title' }, [ this.title ]),
				E('div', { 'class': 'cbi-value-field' }, [ input,
					this.help ? E('div', { 'class': 'cbi-value-description' }, [ this.help ]) : '' ])
			]);
		}
	}
	class Value extends AbstractValue {
		render() {
			const v = this.current();
			this.input = E('input', { type: this.password ? 'password' : 'text', name: this.name,
				value: v === undefined ? '' : v, placeholder: this.placeholder || '' });
			return this.row(this.input);
		}
		read() { return this.input.value.trim(); }
	}
	class ListValue extends Value {
		render() {
			const v = this.current();
			this.input = E('select', { name: this.name }, this.values.map((x) =>
				E('option', { value: x, selected: x === v ? 'selected' : null }, [ x ])));
			return this.row(this.input);
		}
	}
	class Flag extends AbstractValue {
		render() {
			this.input = E('input', { type: 'checkbox', name: this.name,
				checked: this.current() === '1' ? 'checked' : null });
			return this.row(this.input);
		}
		read() { return this.input.checked ? '1' : '0'; }
	}
	class DynamicList extends AbstractValue {
		render() {
			const v = this.current();
			const list = Array.isArray(v) ? v : (v ? [ v ] : []);
			this.input = E('textarea', { name: this.name, rows: 2 }, [ list.join('\n') ]);
			return this.row(this.input);
		}
		read() { return this.input.value.split(/\s+/).filter((x) => x); }
	}
	class DeviceSelect extends DynamicList {}

	class TypedSection {
		constructor(map, type) {
			Object.assign(this, { map, type, options: [], tabs: [] });
		}
		tab(name, title) { this.tabs.push({ name, title }); }
		taboption(tab, cls, name, title, help) {
			const o = new cls(this, name, title, help);
			o.tab = tab;
			this.options.push(o);
			return o;
		}
		option(cls, name, title, help) { return this.taboption(null, cls, name, title, help); }
		render() {
			this.sid = (uci.sections(this.map.config, this.type)[0] || {})['.name'];
			return E('div', { 'class': 'cbi-section' }, this.tabs.map((t) =>
				E('fieldset', { 'class': 'cbi-section-node', 'data-tab': t.name }, [
					E('legend', {}, [ t.title ]),
					...this.options.filter((o) => o.tab === t.name).map((o) => o.render())
				])));
		}
	}

	class Map {
		constructor(config, title, description) {
			Object.assign(this, { config, title, description, sections: [] });
		}
		section(cls, type) {
			const s = new cls(this, type);
			this.sections.push(s);
			return s;
		}
		render() {
			return Promise.resolve(E('div', { 'class': 'cbi-map' }, [
				E('h2', {}, [ this.title ]),
				E('div', { 'class': 'cbi-map-descr' }, [ this.description ]),
				...this.sections.map((s) => s.render())
			]));
		}
		parse() {
			this.sections.forEach((s) => s.options.forEach((o) =>
				uci.set(this.config, s.sid, o.name, o.read())));
			return Promise.resolve();
		}
		// As LuCI's: parse into uci, run `cb` (a rejection stops the save:
		// LuCI shows it in a "Save error" dialog, the stand-in as a
		// notification), then write.
		save(cb) {
			return this.parse().then(() => cb && cb()).then(() => uci.save(this.config))
				.then(() => ui.addNotification(null, E('p', {}, [ 'saved' ]), 'info'),
					(e) => ui.addNotification(_('Save error'), E('p', {}, [ e.message ]), 'danger'));
		}
	}

	const form = { Map, TypedSection, NamedSection: TypedSection, Value, ListValue, Flag, DynamicList };
	const widgets = { DeviceSelect };

	const view = {
		extend: function(proto) { return proto; }
	};

	const modules = { view, rpc, poll, ui, uci, fs, form, 'tools.widgets': widgets };

	window.L = {
		env: { pollinterval: 5 },
		resolveDefault: function(p, def) { return Promise.resolve(p).catch(() => def); },
		// Load a view as LuCI does: the 'require' directives at its top name
		// the modules its body gets.
		loadView: function(path) {
			return fetch('/luci-static/resources/view/' + path + '.js').then((r) => r.text()).then((src) => {
				const names = [], values = [];
				const re = /^\s*'require ([\w.]+)(?: as (\w+))?';/gm;
				let m;
				while ((m = re.exec(src)) !== null) {
					names.push(m[2] || m[1]);
					values.push(modules[m[1]]);
				}
				const v = new Function(...names, src).apply(null, values);
				return Promise.resolve(v.load ? v.load() : null).then((data) => {
					const out = v.render(data);
					return Promise.resolve(out).then((node) => {
						const main = document.getElementById('maincontent');
						main.appendChild(node);
						if (v.handleSave) {
							main.appendChild(E('button', { 'class': 'cbi-button cbi-button-save',
								'click': () => v.handleSave().catch(() => {}) }, [ 'Save' ]));
						}
						document.body.setAttribute('data-rendered', path);
						return v;
					});
				});
			});
		}
	};
})();
